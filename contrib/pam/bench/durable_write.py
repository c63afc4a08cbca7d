#!/usr/bin/env python3
"""The durable write of one sign-in, without the rest: what
pam_google_authenticator (DISALLOW_REUSE) does to its state file, against
what a bbolt commit of a sign-in does to mfad's database, and what a
write-ahead log would flush instead, on one filesystem, interleaved.

- gauth: its write_file_contents(), as strace shows it (Debian 20191231):
  mkstemp (open O_CREAT|O_EXCL), fchmod, stat, write of the ~90-byte file,
  fsync, close, rename over the old file. The directory is not synced.
- bbolt: a commit of a TOTP sign-in as strace shows mfad's: 7 data pages
  written (pwrite) then fdatasync, then the meta page written, then
  fdatasync again (bbolt's order: the pages, then the meta page that makes
  them current), in a preallocated file.
- log: what a write-ahead log in front of bbolt would flush instead: ~900
  bytes appended to a preallocated file, then one fdatasync.

Usage: durable_write.py [--dir DIR] [--runs 200]. DIR (default a new
directory under /tmp, where bench.py keeps both peers' state) decides the
filesystem. Prints the median and quartiles of each, in microseconds.
"""
import argparse, os, random, shutil, statistics, tempfile, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir")
    ap.add_argument("--runs", type=int, default=200)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="mfad-durable-", dir=a.dir)
    try:
        secret = os.path.join(d, "google_authenticator")
        with open(secret, "w") as f:
            f.write("x" * 78)
        db = os.fdopen(os.open(os.path.join(d, "mfad.db"), os.O_RDWR | os.O_CREAT, 0o600), "r+b", buffering=0)
        fd = db.fileno()
        os.pwrite(fd, b"\1" * (1 << 20), 0)
        os.fsync(fd)
        page = b"\2" * 4096
        log = os.open(os.path.join(d, "mfad.log"), os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(log, b"\0" * (8 << 20), 0)  # written, not just allocated: no extent changes
        os.fsync(log)
        log_end = [0]

        def gauth():
            t = time.perf_counter()
            tmp = "%s~%06d" % (secret, random.randrange(10 ** 6))
            f = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(f, 0o400)
            os.stat(secret)
            os.write(f, b"x" * 87)
            os.fsync(f)
            os.close(f)
            os.rename(tmp, secret)
            return time.perf_counter() - t

        def bbolt():
            t = time.perf_counter()
            for i in range(7):
                os.pwrite(fd, page, 4096 * (4 + 3 * i))
            os.fdatasync(fd)
            os.pwrite(fd, page, 0)
            os.fdatasync(fd)
            return time.perf_counter() - t

        def log_append():
            t = time.perf_counter()
            os.pwrite(log, b"\3" * 900, log_end[0] % (8 << 20))
            log_end[0] += 900
            os.fdatasync(log)
            return time.perf_counter() - t

        writes = {"gauth": gauth, "bbolt": bbolt, "log": log_append}
        res = {k: [] for k in writes}
        for _ in range(a.runs):
            for k in random.sample(list(res), len(res)):
                time.sleep(0.003)  # an idle moment between sign-ins, as in bench.py
                res[k].append(writes[k]())
        for k, v in res.items():
            q = statistics.quantiles(v, n=4)
            print("%-6s median %5.0f us  (quartiles %.0f..%.0f)" % (k, statistics.median(v) * 1e6, q[0] * 1e6, q[2] * 1e6))
        print("ratio bbolt / gauth %.2f" % (statistics.median(res["bbolt"]) / statistics.median(res["gauth"])))
        print("ratio log / gauth %.2f" % (statistics.median(res["log"]) / statistics.median(res["gauth"])))
        os.close(log)
        db.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
