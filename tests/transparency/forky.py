"""forky.py: Python making children in every way the standard library does.

subprocess (posix_spawn and fork paths, pipes, shell, a killed child),
os.fork (exit statuses, a signal, nested forks, data through a pipe),
os.forkpty, os.posix_spawn, and multiprocessing with the fork, forkserver
and spawn start methods (Pool, Process with a Queue, a Pipe, a failing
Process, a Manager).  It prints only what does not depend on pids or
scheduling, one line to stderr, and exits 9.
"""
import multiprocessing as mp
import os
import signal
import subprocess
import sys


def square(x):
    return x * x


def put_sum(q, n):
    q.put(sum(range(n)))


def send_back(conn, word):
    conn.send(word.upper())
    conn.close()


def fail_with(code):
    sys.exit(code)


def fill(d, key):
    d[key] = len(key)


def status(st):
    if os.WIFEXITED(st):
        return "exit %d" % os.WEXITSTATUS(st)
    return "signal %d" % os.WTERMSIG(st)


def with_subprocess():
    r = subprocess.run(["/bin/echo", "hello"], capture_output=True)
    print("run:", r.returncode, r.stdout)
    r = subprocess.run("exit 3", shell=True)
    print("shell exit:", r.returncode)
    big = b"x" * 300000
    p = subprocess.Popen(["/bin/cat"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    out, _ = p.communicate(big)
    print("cat echoed:", len(out), out == big, p.returncode)
    # preexec_fn forces _posixsubprocess onto its fork() path
    out = subprocess.check_output(["sh", "-c", "echo $((6 * 7))"],
                                  preexec_fn=lambda: None)
    print("check_output with preexec_fn:", out)
    p = subprocess.Popen(["sleep", "30"])
    p.terminate()
    print("terminated child:", p.wait())
    r = subprocess.run(["sh", "-c", "echo to-err >&2; exit 4"],
                       stderr=subprocess.PIPE)
    print("stderr captured:", r.returncode, r.stderr)


def with_os_fork():
    codes = []
    for code in range(5):
        pid = os.fork()
        if pid == 0:
            os._exit(code * 10)
        codes.append(status(os.waitpid(pid, 0)[1]))
    print("fork exit codes:", codes)

    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGUSR1)
        os._exit(0)
    print("fork killed by:", status(os.waitpid(pid, 0)[1]))

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # a grandchild writes, the child waits for it
        gpid = os.fork()
        if gpid == 0:
            os.write(w, b"from the grandchild")
            os._exit(0)
        _, st = os.waitpid(gpid, 0)
        os._exit(0 if os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0 else 1)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    print("nested fork:", data, status(os.waitpid(pid, 0)[1]))

    # wait() and waitid() for children in any order
    pids = set()
    for code in (1, 2, 3):
        pid = os.fork()
        if pid == 0:
            os._exit(code)
        pids.add(pid)
    seen = sorted(status(os.wait()[1]) for _ in pids)
    print("wait():", seen)
    pid = os.fork()
    if pid == 0:
        os._exit(6)
    info = os.waitid(os.P_PID, pid, os.WEXITED)
    print("waitid:", info.si_status)


def with_forkpty():
    pid, fd = os.forkpty()
    if pid == 0:
        os.write(1, b"inside the pty\n")
        os._exit(5)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(fd)
    print("forkpty:", data.replace(b"\r", b""), status(os.waitpid(pid, 0)[1]))


def with_posix_spawn():
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 8"], os.environ)
    print("posix_spawn:", status(os.waitpid(pid, 0)[1]))


def with_multiprocessing(method):
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        print(method, "pool:", pool.map(square, range(12)))
        print(method, "pool async:", pool.apply_async(square, (7,)).get(30))
    q = ctx.Queue()
    p = ctx.Process(target=put_sum, args=(q, 1000))
    p.start()
    print(method, "queue:", q.get(timeout=30))
    p.join()
    print(method, "process exit:", p.exitcode)
    a, b = ctx.Pipe()
    p = ctx.Process(target=send_back, args=(b, method))
    p.start()
    print(method, "pipe:", a.recv())
    p.join()
    p = ctx.Process(target=fail_with, args=(3,))
    p.start()
    p.join()
    print(method, "failing process exit:", p.exitcode)
    with ctx.Manager() as m:
        d = m.dict()
        ps = [ctx.Process(target=fill, args=(d, k)) for k in ("a", "bb")]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        print(method, "manager:", sorted(d.items()))


def main():
    with_subprocess()
    sys.stdout.flush()
    with_os_fork()
    with_forkpty()
    with_posix_spawn()
    for method in ("fork", "forkserver", "spawn"):
        with_multiprocessing(method)
    print("done")
    sys.stdout.flush()
    print("forky.py: to stderr", file=sys.stderr)
    sys.exit(9)


if __name__ == "__main__":
    main()
