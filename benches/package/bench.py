#!/usr/bin/env python3
"""Packaging speed: nearcast-packager vs ffmpeg's fMP4 HLS muxer, same input.

Makes (once, cached) a 10-minute 3-rung H.264 + AAC ladder with ffmpeg,
then alternately times `nearcast-packager package` on the three renditions
(CMAF + HLS + DASH + SHA-256 index, all fsynced) and
`ffmpeg -c copy -f hls -hls_segment_type fmp4` on each rendition (HLS only,
no checksums), and prints the median times and the ratio. Run from the
repository root:

    cargo build --release -p nearcast-packager
    python3 benches/package/bench.py [--rounds 5] [--minutes 10]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNGS = [("360p", "640x360", "800k"), ("270p", "480x270", "500k"), ("180p", "320x180", "250k")]


def make_inputs(work, minutes):
    secs = minutes * 60
    out = []
    for name, size, rate in RUNGS:
        path = os.path.join(work, f"{name}-{minutes}min.mp4")
        if not os.path.exists(path):
            print(f"making {path} ...", flush=True)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=size={size}:rate=25:duration={secs}", "-f", "lavfi", "-i",
                            f"sine=frequency=440:sample_rate=48000:duration={secs}", "-c:v", "libx264",
                            "-preset", "ultrafast", "-b:v", rate, "-g", "50", "-sc_threshold", "0",
                            "-c:a", "aac", "-b:a", "64k", path + ".part.mp4"], check=True)
            os.rename(path + ".part.mp4", path)
        out.append(path)
    return out


def timed(cmds):
    t = time.monotonic()
    for c in cmds:
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-package-bench"))
    a = ap.parse_args()
    exe = os.path.join(ROOT, "target", "release", "nearcast-packager")
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release -p nearcast-packager")
    os.makedirs(a.work, exist_ok=True)
    inputs = make_inputs(a.work, a.minutes)
    out = os.path.join(a.work, "out")
    ours, theirs = [], []
    for rnd in range(a.rounds):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        nearcast = [[exe, "package", "--title", "bench", "--store", os.path.join(out, "nearcast"), "--target", "4"] + inputs]
        ffmpeg = []
        for path, (name, _, _) in zip(inputs, RUNGS):
            d = os.path.join(out, "ffmpeg", name)
            os.makedirs(d)
            ffmpeg.append(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-c", "copy", "-f", "hls",
                           "-hls_segment_type", "fmp4", "-hls_time", "4", "-hls_playlist_type", "vod",
                           "-hls_segment_filename", os.path.join(d, "seg-%05d.m4s"), os.path.join(d, "index.m3u8")])
        pair = [("nearcast", nearcast, ours), ("ffmpeg", ffmpeg, theirs)]
        for name, cmds, acc in (pair if rnd % 2 == 0 else pair[::-1]):
            acc.append(timed(cmds))
            print(f"round {rnd + 1} {name:8} {acc[-1]:6.2f} s", flush=True)
    size = sum(os.path.getsize(p) for p in inputs) / 1e6
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"\n{a.minutes}-minute 3-rung input ({size:.0f} MB), median of {a.rounds} rounds:")
    print(f"  nearcast-packager (CMAF + HLS + DASH + SHA-256 index, fsynced): {o:6.2f} s")
    print(f"  ffmpeg -c copy -f hls -hls_segment_type fmp4 (x3 rungs):       {t:6.2f} s")
    print(f"  speed ratio nearcast / ffmpeg: {t / o:.2f}x")


if __name__ == "__main__":
    main()
