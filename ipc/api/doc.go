// Package api is the wire contract between mfad and its clients: route
// paths, request and response types (snake_case JSON), the problem body
// and the stable error codes. ipc/server and ipc/client mirror each other
// through it; ipc/openapi.yaml describes the same contract.
//
// It imports only the standard library.
package api
