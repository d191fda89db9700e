#!/usr/bin/env python3
"""Per-title ladders: the bits `ladder --per-title` saves vs the fixed ladder.

Makes (once, cached) 1080p30 sources of different complexity with ffmpeg:
still (a test card with a ticking clock), cartoon (flat shapes moving),
motion (a Mandelbrot zoom: fine detail everywhere, all moving) and noise
(moving shapes under grain that changes every frame). Each is run through
`nearcast-packager ladder` twice, with the fixed ladder and with
`--per-title`, same encoder and rungs; then every rendition's video
bitrate, PSNR and SSIM against the source scaled to the rung (ffmpeg's
psnr and ssim filters over the whole title) are printed side by side with
the bits saved. Run from the repository root:

    cargo build --release -p nearcast-packager
    python3 benches/ladder/bench.py [--secs 10] [--sources still,noise]

Equal quality here means: a per-title rung is at least as good as the
target (45 dB PSNR by default) or as the fixed rung, whichever is lower,
within 0.5 dB. Targets (issue 23): >= 20 % fewer bits on the easy sources,
no quality lost on the hard ones. At the default target only `still` is
easy: the others cannot reach 45 dB within the fixed rates, so they must
come out exactly as the fixed ladder.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = {
    "still": "testsrc=size=1920x1080:rate=30",
    "cartoon": "testsrc2=size=1920x1080:rate=30",
    "motion": "mandelbrot=size=1920x1080:rate=30",
    "noise": "testsrc2=size=1920x1080:rate=30,noise=alls=25:allf=t+u",
}
EASY = {"still"}


def make_source(work, name, secs):
    path = os.path.join(work, f"{name}-{secs}s.mp4")
    if not os.path.exists(path):
        print(f"making {path} ...", flush=True)
        graph = f"{SOURCES[name]},trim=duration={secs}"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph,
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "10", "-pix_fmt", "yuv420p",
                        path + ".part.mp4"], check=True)
        os.rename(path + ".part.mp4", path)
    return path


def ladder(exe, src, work, per_title, target):
    shutil.rmtree(work, ignore_errors=True)
    cmd = [exe, "ladder", "--title", "t", "--store", os.path.join(work, "store"), "--work", work]
    if per_title:
        cmd += ["--per-title", "--target-psnr", str(target)]
    t = time.monotonic()
    out = subprocess.run(cmd + [src], check=True, capture_output=True, text=True).stdout
    secs = time.monotonic() - t
    files = sorted((f for f in os.listdir(work) if re.fullmatch(r"\d+p\.mp4", f)), key=lambda f: -int(f[:-5]))
    return secs, [os.path.join(work, f) for f in files], out


def video_kbps(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=bit_rate", "-of", "csv=p=0", path], check=True, capture_output=True,
                         text=True).stdout
    return int(out.strip()) / 1000


def quality(enc, src):
    """(PSNR dB, SSIM) of `enc` against `src` scaled to `enc`'s height."""
    h = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height",
                        "-of", "csv=p=0", enc], check=True, capture_output=True, text=True).stdout.strip()
    graph = (f"[1:v]scale=-2:{h},format=yuv420p,split[r1][r2];[0:v]split[e1][e2];"
             "[e1][r1]psnr;[e2][r2]ssim")
    log = subprocess.run(["ffmpeg", "-nostdin", "-nostats", "-i", enc, "-i", src, "-lavfi", graph, "-f", "null",
                          "-"], check=True, capture_output=True, text=True).stderr
    psnr = re.findall(r"PSNR .*average:([0-9.inf]+)", log)[-1]
    ssim = re.findall(r"SSIM .*All:([0-9.]+)", log)[-1]
    return min(float(psnr), 100.0), float(ssim)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--target-psnr", type=float, default=45.0)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nearcast-ladder-bench"))
    a = ap.parse_args()
    exe = os.path.join(ROOT, "target", "release", "nearcast-packager")
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release -p nearcast-packager")
    os.makedirs(a.work, exist_ok=True)
    verdicts = []
    for name in a.sources.split(","):
        src = make_source(a.work, name, a.secs)
        t_fixed, fixed, _ = ladder(exe, src, os.path.join(a.work, f"{name}-fixed"), False, a.target_psnr)
        t_pt, pt, summary = ladder(exe, src, os.path.join(a.work, f"{name}-pt"), True, a.target_psnr)
        print(f"\n{name}: fixed ladder {t_fixed:.0f} s, per-title {t_pt:.0f} s (trials included)")
        print("  " + next(l for l in summary.splitlines() if l.startswith("per-title")))
        print(f"  {'rung':>6} {'fixed kbps':>10} {'PSNR':>6} {'SSIM':>7} | {'ours kbps':>9} {'PSNR':>6} {'SSIM':>7}"
              f" | saved")
        sum_f = sum_p = 0.0
        equal = True
        for f, p in zip(fixed, pt):
            kf, kp = video_kbps(f), video_kbps(p)
            (qf, sf), (qp, sp) = quality(f, src), quality(p, src)
            sum_f, sum_p = sum_f + kf, sum_p + kp
            equal &= qp >= min(a.target_psnr, qf) - 0.5
            print(f"  {os.path.basename(f)[:-4]:>6} {kf:10.0f} {qf:6.2f} {sf:7.4f} | {kp:9.0f} {qp:6.2f} {sp:7.4f}"
                  f" | {100 * (1 - kp / kf):5.1f} %")
        saved = 100 * (1 - sum_p / sum_f)
        print(f"  ladder total: fixed {sum_f:.0f} kbps, per-title {sum_p:.0f} kbps, ratio {sum_p / sum_f:.2f}, "
              f"saved {saved:.1f} %, equal quality: {'yes' if equal else 'NO'}")
        goal = saved >= 20 if name in EASY else saved >= -1
        verdicts.append(f"{name}: saved {saved:.1f} % ({'easy: >= 20 %' if name in EASY else 'hard: no loss'})"
                        f", equal quality {'yes' if equal else 'NO'} -> {'met' if goal and equal else 'MISSED'}")
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
