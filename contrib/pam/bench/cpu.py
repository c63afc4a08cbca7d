#!/usr/bin/env python3
"""The PAM host's own CPU for one TOTP sign-in, in instructions: pamtester under
callgrind with pam_permit (the baseline: pamtester, libpam, the dynamic loader)
and with pam_mfad against a running mfad (a real, durable sign-in each run).
Instruction counts do not move with the machine's load, unlike times, so the
difference is pam_mfad's own cost; it is split by object (pam_mfad.so, json-c,
libc, the loader). mfad's own CPU is not in these figures (another process).

Usage (root): cpu.py --mfad BIN/mfad --module BIN/pam_mfad.so [--module OTHER.so ...] [--runs 3]
Each --module is measured (e.g. the build before a change, as a second one).
"""
import argparse, collections, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import api, oath, step_wait  # noqa: E402


def callgrind(svc, user, code, out):
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                        "pamtester", svc, user, "authenticate"], input=(code + "\n").encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ok = b"successfully authenticated" in p.stdout + p.stderr
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    return ok, total


def by_object(out):
    """Instructions per object file (self cost), from callgrind_annotate."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", out],
                          stdout=subprocess.PIPE, text=True).stdout
    objs = collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s.*\[(.+)\]\s*$", line)
        if m:
            name = os.path.basename(m.group(2))
            name = re.sub(r"\.so[.\d]*$", ".so", name)
            objs[name] += int(m.group(1).replace(",", ""))
    return objs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mfad", required=True)
    ap.add_argument("--module", action="append", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed")
    work = tempfile.mkdtemp(prefix="mfad-pamcpu-")
    os.chmod(work, 0o755)
    sock = os.path.join(work, "mfad.sock")
    services, mfad = [], None
    try:
        mfad = subprocess.Popen([a.mfad, "--socket", sock, "--state-dir", os.path.join(work, "state"),
                                 "--log-level", "warn"], stderr=open(os.path.join(work, "mfad.log"), "w"),
                                env=dict(os.environ, NOTIFY_SOCKET="", LISTEN_FDS=""))
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        # One account per run and module: mfad accepts a code once.
        accounts = []
        for i in range(a.runs * len(a.module)):
            name = "cpu%03d" % i
            assert api(sock, "POST", "/v1/accounts", {"name": name, "kind": "member"})[0] == 201
            st, enr = api(sock, "POST", "/v1/accounts/%s/devices" % name, {"type": "totp"})
            assert st == 201, st
            step_wait()
            now = time.time()
            st, _ = api(sock, "POST", "/v1/accounts/%s/devices/%s/activate" % (name, enr["device"]["id"]),
                        {"code1": oath(enr["secret"], now - 30), "code2": oath(enr["secret"], now)})
            assert st == 200, st
            accounts.append((name, enr["secret"]))
        lines = {"pam_permit": "auth required pam_permit.so"}
        for i, m in enumerate(a.module):
            lines["pam_mfad#%d %s" % (i + 1, m)] = "auth required %s socket=%s" % (os.path.abspath(m), sock)
        results = {}
        time.sleep(30 - time.time() % 30 + 0.3)  # a new step: the activations spent the current one
        for k, line in lines.items():
            n = "mfad-cpu-%d-%d" % (len(services), os.getpid())
            with open("/etc/pam.d/" + n, "w") as f:
                f.write(line + "\n")
            services.append("/etc/pam.d/" + n)
            totals, objs = [], None
            for r in range(a.runs):
                if k == "pam_permit":
                    user, code = "root", "000000"
                else:
                    user, secret = accounts.pop(0)
                    code = oath(secret)
                out = os.path.join(work, "cg.%d.%d" % (len(services), r))
                ok, total = callgrind(n, user, code, out)
                if not ok:
                    sys.exit("%s: the sign-in failed under callgrind (see %s)" % (k, work))
                totals.append(total)
                objs = by_object(out)
            results[k] = (statistics.median(totals), objs)
        base = results["pam_permit"][0]
        print("%-60s %14s %14s" % ("module", "instructions", "over permit"))
        for k, (t, _) in results.items():
            print("%-60s %14d %14d" % (k, t, t - base))
        permit_objs = results["pam_permit"][1]
        for k, (t, objs) in results.items():
            if k == "pam_permit":
                continue
            print("\n%s, by object (self instructions, last run) minus pam_permit's:" % k)
            for obj, v in sorted(objs.items(), key=lambda kv: -(kv[1] - permit_objs.get(kv[0], 0))):
                d = v - permit_objs.get(obj, 0)
                if abs(d) >= 1000:
                    print("  %-30s %12d" % (obj, d))
    finally:
        for p in services:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        if mfad:
            mfad.send_signal(signal.SIGTERM)
            mfad.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
