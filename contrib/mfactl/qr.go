package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"strings"
)

// drawQR renders the QR code PNG that mfad returns as half-block text, two
// module rows per line, light modules drawn as blocks so that phones read
// it on dark and light terminals alike (with a quiet zone of two modules).
func drawQR(w io.Writer, pngBytes []byte) error {
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		return err
	}
	grid, err := qrModules(img)
	if err != nil {
		return err
	}
	const quiet = 2
	n := len(grid)
	light := func(r, c int) bool {
		r, c = r-quiet, c-quiet
		return r < 0 || c < 0 || r >= n || c >= n || !grid[r][c]
	}
	var b strings.Builder
	for r := 0; r < n+2*quiet; r += 2 {
		for c := 0; c < n+2*quiet; c++ {
			top, bottom := light(r, c), r+1 >= n+2*quiet || light(r+1, c)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// qrModules samples the module grid of a scaled QR image: the top-left
// finder pattern is 7 modules wide, which gives the module size.
func qrModules(img image.Image) ([][]bool, error) {
	bd := img.Bounds()
	dark := func(x, y int) bool {
		r, g, b, _ := img.At(x, y).RGBA()
		return r+g+b < 3*0x8000
	}
	x0, y0 := -1, -1
	for y := bd.Min.Y; y < bd.Max.Y && x0 < 0; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			if dark(x, y) {
				x0, y0 = x, y
				break
			}
		}
	}
	if x0 < 0 {
		return nil, errors.New("qr: blank image")
	}
	run := 0
	for x := x0; x < bd.Max.X && dark(x, y0); x++ {
		run++
	}
	module := run / 7
	if module == 0 {
		return nil, errors.New("qr: image too small")
	}
	xEnd := x0
	for x := bd.Max.X - 1; x > x0; x-- {
		if dark(x, y0) {
			xEnd = x
			break
		}
	}
	n := (xEnd - x0 + 1) / module
	if n < 21 || n > 177 {
		return nil, errors.New("qr: not a QR code")
	}
	grid := make([][]bool, n)
	for r := range grid {
		grid[r] = make([]bool, n)
		for c := range grid[r] {
			grid[r][c] = dark(x0+c*module+module/2, y0+r*module+module/2)
		}
	}
	return grid, nil
}
