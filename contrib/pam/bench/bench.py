#!/usr/bin/env python3
"""One TOTP sign-in through pamtester: pam_mfad against pam_google_authenticator
and pam_oath, measured as docs/research PERF-BASELINE §4 does.

Whole process, timed here: fork/exec of `pamtester SVC USER authenticate`, the
code written to its stdin, wait4. RUNS runs of each module per repetition, in
round-robin (one run of each module in turn, in a new random order each
time); the figure is the median of the
REPS repetition medians. Child CPU from wait4. Daemon CPU: what the mfad
that a run signed in on spent from the start of that run to the start of
the next (its threads' run time in /proc/PID/task/*/schedstat, so that work
mfad does after its answer, such as closing the connection, counts), averaged
over the repetition's runs.
Codes come from oathtool (not timed). State is restored before each run for
the stateful peers (not timed), so each timed run still does its state write.

mfad refuses a code it accepted before (replay), so its runs sign in a
different account each time (ACCOUNTS accounts, one TOTP device each, all
enrolled through the API first); every run is one durable verification.

Usage (root): bench.py --mfad BIN/mfad --module BIN/pam_mfad.so [--runs 200]
              [--reps 5] [--sink] [--only mfad,gauth,...] [--module-b OTHER.so]
--module-b measures a second build of pam_mfad in the same run ("mfad-b",
against the same mfad, its own accounts), e.g. the build before a change.
--mfad-b measures a second build of mfad in the same run ("mfad-daemon-b": the same
module against that mfad, on a socket and state of its own), e.g. a daemon change.
--sink binds a reader on /dev/log for the run (this VM has none, so glibc's
syslog() writes to /dev/console, which is slow), and removes it afterwards.
"""
import argparse, json, os, random, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # 20 bytes, as PERF-BASELINE §4


def b32hex(s):
    import base64
    return base64.b32decode(s).hex()


def oath(secret, at=None):
    args = ["oathtool", "--totp", "-b", secret]
    if at is not None:
        args += ["-N", "@%d" % int(at)]
    return subprocess.check_output(args, text=True).strip()


def api(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    b = json.dumps(body).encode() if body is not None else b""
    s.sendall(("%s %s HTTP/1.1\r\nHost: mfad\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (method, path, len(b))).encode() + b)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        raw, body = body, b""
        while raw:
            n, _, rest = raw.partition(b"\r\n")
            n = int(n.split(b";")[0], 16)
            if n == 0:
                break
            body += rest[:n]
            raw = rest[n + 2:]
    return status, json.loads(body) if body.strip() else None


def step_wait(margin=3):
    rem = 30 - time.time() % 30
    if rem < margin:
        time.sleep(rem + 0.2)


def run_once(svc, user, code):
    t0 = time.perf_counter()
    p = subprocess.Popen(["pamtester", svc, user, "authenticate"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.stdin.write((code + "\n").encode())
        p.stdin.close()
    except BrokenPipeError:
        pass  # pam_permit never reads
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = os.waitstatus_to_exitcode(status)
    return t1 - t0, ru.ru_utime + ru.ru_stime, p.returncode


def daemon_ns(pid):
    """CPU time of every thread of pid, in ns (schedstat: time on a CPU)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended: its time is gone with it
    return total


class Sink:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind("/dev/log")
        self.n = 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                self.s.recv(65536)
                self.n += 1
            except OSError:
                return

    def close(self):
        self.s.close()
        os.unlink("/dev/log")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mfad", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sink", action="store_true")
    ap.add_argument("--only", default="permit,gauth,gauth-reuse,oath,mfad")
    ap.add_argument("--module-b", help="a second pam_mfad.so to measure in the same run (mfad-b)")
    ap.add_argument("--mfad-b", help="a second mfad binary to measure in the same run (mfad-daemon-b)")
    a = ap.parse_args()
    only = a.only.split(",")
    if a.module_b and "mfad-b" not in only:
        only.append("mfad-b")
    if a.mfad_b and "mfad-daemon-b" not in only:
        only.append("mfad-daemon-b")
    work = tempfile.mkdtemp(prefix="mfad-pambench-")
    os.chmod(work, 0o755)
    services, daemons, sink = [], [], None
    results = {}
    try:
        if a.sink:
            if os.path.exists("/dev/log"):
                sys.exit("/dev/log exists already: run without --sink")
            sink = Sink()
        # Peers' state, as PERF-BASELINE §4.
        ga = os.path.join(work, "gauth")
        with open(ga, "w") as f:
            f.write(SECRET + "\n\" WINDOW_SIZE 3\n\" TOTP_AUTH\n")
        gar = os.path.join(work, "gauth-reuse.tmpl")
        with open(gar, "w") as f:
            f.write(SECRET + "\n\" WINDOW_SIZE 3\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n")
        for p in (ga, gar):
            os.chmod(p, 0o400)
        oatht = os.path.join(work, "users.oath.tmpl")
        with open(oatht, "w") as f:
            f.write("HOTP/T30 perfuser - %s\n" % b32hex(SECRET))
        os.chmod(oatht, 0o600)
        sock = os.path.join(work, "mfad.sock")
        svc = {
            "permit": "auth required pam_permit.so",
            "gauth": "auth required pam_google_authenticator.so secret=%s user=root" % ga,
            "gauth-reuse": "auth required pam_google_authenticator.so secret=%s user=root" % os.path.join(work, "gauth-reuse"),
            "oath": "auth required pam_oath.so usersfile=%s window=1" % os.path.join(work, "users.oath"),
            "mfad": "auth required %s socket=%s" % (os.path.abspath(a.module), sock),
        }
        if a.module_b:
            svc["mfad-b"] = "auth required %s socket=%s" % (os.path.abspath(a.module_b), sock)
        sock_b = os.path.join(work, "mfad-b.sock")
        if a.mfad_b:
            svc["mfad-daemon-b"] = "auth required %s socket=%s" % (os.path.abspath(a.module), sock_b)
        names = {}
        for k, line in svc.items():
            n = "mfad-bench-%s-%d" % (k, os.getpid())
            with open("/etc/pam.d/" + n, "w") as f:
                f.write(line + "\n")
            services.append("/etc/pam.d/" + n)
            names[k] = n

        def restore(k):
            if k == "gauth-reuse":
                shutil.copy(gar, os.path.join(work, "gauth-reuse"))
                os.chmod(os.path.join(work, "gauth-reuse"), 0o400)
            elif k == "oath":
                shutil.copy(oatht, os.path.join(work, "users.oath"))
                for suffix in (".lock", ".new"):
                    try:
                        os.unlink(os.path.join(work, "users.oath" + suffix))
                    except FileNotFoundError:
                        pass

        accounts = []
        mfads = [k for k in only if k.startswith("mfad")]
        daemon_of = {}  # service -> the mfad process it signs in on

        def start(binary, sock, state):
            d = subprocess.Popen([binary, "--socket", sock, "--state-dir", state, "--log-level", "warn"],
                                 stderr=open(state + ".log", "w"),
                                 env=dict(os.environ, NOTIFY_SOCKET="", LISTEN_FDS=""))
            daemons.append(d)
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)

        if mfads:
            # Every mfad service's accounts live on the mfad it asks.
            if any(k != "mfad-daemon-b" for k in mfads):
                start(a.mfad, sock, os.path.join(work, "state"))
                for k in mfads:
                    if k != "mfad-daemon-b":
                        daemon_of[k] = daemons[-1].pid
            if "mfad-daemon-b" in mfads:
                start(a.mfad_b, sock_b, os.path.join(work, "state-b"))
                daemon_of["mfad-daemon-b"] = daemons[-1].pid
            for i in range(a.runs * len(mfads)):
                on = sock_b if mfads[i // a.runs] == "mfad-daemon-b" else sock
                name = "perf%03d" % i
                st, _ = api(on, "POST", "/v1/accounts", {"name": name, "kind": "member"})
                assert st == 201, st
                st, enr = api(on, "POST", "/v1/accounts/%s/devices" % name, {"type": "totp"})
                assert st == 201, st
                step_wait()
                now = time.time()
                st, _ = api(on, "POST", "/v1/accounts/%s/devices/%s/activate" % (name, enr["device"]["id"]),
                            {"code1": oath(enr["secret"], now - 30), "code2": oath(enr["secret"], now)})
                assert st == 200, st
                accounts.append((name, enr["secret"]))

        # Round-robin: run i of every module, then run i+1, so that the
        # machine's changing load falls on all of them alike.
        reps = {k: [] for k in only}
        for r in range(a.reps):
            if mfads:
                # A new step for every repetition: each account signs in once per step.
                time.sleep(30 - time.time() % 30 + 0.3)
            walls = {k: [] for k in only}
            cpus = {k: [] for k in only}
            fails = {k: 0 for k in only}
            dcpu = {k: 0 for k in only}
            last = None  # (service, daemon pid, its CPU ns when the run started)
            cache = {}
            shuffle = random.Random(r)
            for i in range(a.runs):
                # A new order for every run: no module always follows the same
                # one (another's fsync still in the journal, or mfad kept
                # warm by the other pam_mfad build just before).
                order = list(only)
                shuffle.shuffle(order)
                for k in order:
                    restore(k)
                    if k.startswith("mfad"):
                        user, secret = accounts[mfads.index(k) * a.runs + i]
                        code = oath(secret)
                    else:
                        user = "perfuser"
                        stepn = int(time.time() // 30)
                        if stepn not in cache:
                            cache = {stepn: oath(SECRET)}
                        code = cache[stepn]
                    if last:
                        dcpu[last[0]] += daemon_ns(last[1]) - last[2]
                        last = None
                    if k in daemon_of:
                        last = (k, daemon_of[k], daemon_ns(daemon_of[k]))
                    w, c, rc = run_once(names[k], user, code)
                    if rc != 0:
                        fails[k] += 1
                    walls[k].append(w)
                    cpus[k].append(c)
            if last:
                dcpu[last[0]] += daemon_ns(last[1]) - last[2]
            for k in only:
                reps[k].append((statistics.median(walls[k]), statistics.median(cpus[k]), fails[k],
                                dcpu[k] / a.runs / 1e9))
                print("%-12s rep %d: wall %.3f ms, child cpu %.3f ms, daemon cpu %.3f ms, failures %d" %
                      (k, r + 1, reps[k][-1][0] * 1e3, reps[k][-1][1] * 1e3, reps[k][-1][3] * 1e3, fails[k]),
                      flush=True)
        for k in only:
            results[k] = (statistics.median(x[0] for x in reps[k]), statistics.median(x[1] for x in reps[k]),
                          sum(x[2] for x in reps[k]), statistics.median(x[3] for x in reps[k]))
        print()
        print("%-12s %10s %14s %15s %9s" % ("service", "wall ms", "child cpu ms", "daemon cpu ms", "failures"))
        for k, (w, c, f, d) in results.items():
            dc = "%.3f" % (d * 1e3) if k in daemon_of else "-"
            print("%-12s %10.3f %14.3f %15s %9d" % (k, w * 1e3, c * 1e3, dc, f))
        for m in mfads:
            if m not in results:
                continue
            for peer in ("gauth", "gauth-reuse", "oath", "mfad-b", "mfad-daemon-b"):
                if peer in results and peer != m:
                    # Also repetition by repetition: the two in each were
                    # measured in the same minutes, so the machine's drift
                    # between repetitions cancels out of these.
                    paired = [x[0] / y[0] for x, y in zip(reps[m], reps[peer])]
                    print("ratio %s / %-11s %.2f (of the medians); by repetition %s, their median %.2f" %
                          (m, peer, results[m][0] / results[peer][0], " ".join("%.2f" % x for x in paired),
                           statistics.median(paired)))
        if sink:
            print("syslog lines received on /dev/log: %d" % sink.n)
    finally:
        for p in services:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        for d in daemons:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=15)
        if sink:
            sink.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
