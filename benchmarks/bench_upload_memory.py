"""Server memory under hostile image uploads: peak resident memory against the idle server.

The server runs in its own process (``jointspace.server.app.serve`` on 127.0.0.1) over the
tiny colour index the server tests use (EfficientNet-Lite0 + MiniLM towers, 40 images).
Once it has answered a text and an image query, its idle resident memory (VmRSS from
``/proc/<pid>/status``, median of samples over a second) is measured; then 8 uploads are sent
at once, small on the wire and large when decoded:

* a 16-bit greyscale PNG of 6000x6600 (93 KB; decoded through float64 it cost about 1 GB),
* a PNG of 39,000,000x1 (38 KB; a bicubic resize of that aspect ratio cost about 1.4 GB),
* an 8-bit RGBA PNG of 6000x6600 and a baseline JPEG of 6000x6600,

two of each.  The server's VmRSS is sampled every 5 ms from the first byte sent until every
answer is in and a second after; the peak (and the kernel's own high-water mark, VmHWM) is
reported against the idle figure.  Target: peak under 2x idle.  The statuses show what the
service answered each case (200: decoded within bounds; 413 / 422: refused before decoding).

    python benchmarks/bench_upload_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import machine, save  # noqa: E402

TARGET_RATIO = 2.0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png(width: int, height: int, depth: int, colour_type: int, channels: int) -> bytes:
    """A PNG of one flat colour written row by row (tiny on the wire, large once decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\0" + bytes([90]) * (width * channels * depth // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def hostile_files() -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6000, 6600), (200, 40, 40)).save(buf, format="JPEG", quality=50)
    return {"png16-6000x6600": flat_png(6000, 6600, 16, 0, 1),
            "png-39000000x1": flat_png(39_000_000, 1, 8, 0, 1),
            "rgba-6000x6600": flat_png(6000, 6600, 8, 6, 4),
            "jpeg-6000x6600": buf.getvalue()}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found for process {pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(setup: dict, port: int) -> subprocess.Popen:
    code = ("from jointspace.server.app import serve; "
            f"serve([{str(setup['index'])!r}, {str(setup['text_index'])!r}], {str(setup['model'])!r}, "
            f"host='127.0.0.1', port={port}, log_level='warning')")
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    import server_support as sup

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/api/search", params={"text": "a red square", "k": 1}).status_code == 200:
                png = sup.png_bytes(sup.draw((200, 20, 20), "disc"))
                r = httpx.post(url + "/api/search", files={"file": ("q.png", png, "image/png")}, timeout=120)
                assert r.status_code == 200, r.text
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start in time")


def measure(url: str, pid: int, files: dict, copies: int) -> dict:
    import httpx

    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.005)

    answers = {}

    def send(name: str, data: bytes, i: int):
        t0 = time.perf_counter()
        r = httpx.post(url + "/api/search", files={"file": (f"{name}.png", data, "image/png")}, timeout=300)
        answers[(name, i)] = {"status": r.status_code, "seconds": round(time.perf_counter() - t0, 3),
                              "detail": r.json().get("detail") if r.status_code != 200 else None}

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    senders = [threading.Thread(target=send, args=(name, data, i)) for i in range(copies) for name, data in files.items()]
    t0 = time.perf_counter()
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    wall = time.perf_counter() - t0
    time.sleep(1.0)
    done.set()
    sampler.join()
    return {"peak_rss_mb": max(samples), "samples": len(samples), "wall_s": round(wall, 3),
            "after_rss_mb": rss_mb(pid), "vm_hwm_mb": rss_mb(pid, "VmHWM"),
            "answers": {f"{n}#{i}": a for (n, i), a in sorted(answers.items())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round instead of three")
    args = ap.parse_args(argv)
    import server_support as sup

    rounds = 1 if args.quick else 3
    print("building the colour index ...", flush=True)
    setup = sup.towered_setup()
    files = hostile_files()
    print({n: len(d) for n, d in files.items()}, flush=True)
    port = _free_port()
    proc = start_server(setup, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        time.sleep(1.0)
        idle_samples = []
        for _ in range(20):
            idle_samples.append(rss_mb(proc.pid))
            time.sleep(0.05)
        idle = statistics.median(idle_samples)
        hwm_idle = rss_mb(proc.pid, "VmHWM")
        runs = []
        for r in range(rounds):
            run = measure(url, proc.pid, files, copies=2)
            runs.append(run)
            print(f"round {r + 1}: idle {idle:.0f} MB, peak {run['peak_rss_mb']:.0f} MB "
                  f"({run['peak_rss_mb'] / idle:.2f}x), after {run['after_rss_mb']:.0f} MB, {run['wall_s']:.1f} s",
                  flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    peak = max(r["peak_rss_mb"] for r in runs)
    result = {
        "what": "server VmRSS under 8 concurrent hostile image uploads (2 of each case), against idle",
        "machine": machine(), "files_bytes": {n: len(d) for n, d in files.items()},
        "idle_rss_mb": round(idle, 1), "idle_vm_hwm_mb": round(hwm_idle, 1),
        "peak_rss_mb": round(peak, 1), "peak_over_idle": round(peak / idle, 3),
        "median_peak_over_idle": round(statistics.median(r["peak_rss_mb"] for r in runs) / idle, 3),
        "target_peak_over_idle": TARGET_RATIO, "meets_target": peak / idle < TARGET_RATIO,
        "after_rss_mb": round(runs[-1]["after_rss_mb"], 1), "runs": runs,
    }
    path = save("upload_memory", result)
    print(f"idle {idle:.0f} MB, peak {peak:.0f} MB = {peak / idle:.2f}x idle (target < {TARGET_RATIO}x); "
          f"statuses {sorted({a['status'] for r in runs for a in r['answers'].values()})}; wrote {path}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
