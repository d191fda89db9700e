#!/usr/bin/env bash
# Regenerates the committed sample title: 30 s of ffmpeg's test pattern and
# a tone, as a 3-rung H.264 ladder (360p, 240p, 144p) with AAC audio in the
# first rung, 2 s GOPs. Run from anywhere; needs ffmpeg. The subtitles
# (en.vtt, fr.vtt: a cue every 3 s) are written by hand, not made here.
set -euo pipefail
cd "$(dirname "$0")"
mezz=$(mktemp --suffix=.mp4)
trap 'rm -f "$mezz"' EXIT
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=640x360:rate=25:duration=30 \
  -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=30" \
  -c:v libx264 -preset veryfast -crf 18 -c:a aac -b:a 128k "$mezz"
../../../target/release/nearcast-packager --version >/dev/null 2>&1 || (cd ../../.. && cargo build --release -p nearcast-packager)
rm -f ./*.mp4
# Encode the rungs with the packager's own ladder step, keeping the MP4s.
work=$(mktemp -d)
../../../target/release/nearcast-packager ladder --title sample --store "$work/store" --work "$PWD" \
  --rungs 360:250,240:150,144:80 --gop 2 --audio-kbps 64 "$mezz" >/dev/null
rm -rf "$work"
ls -l ./*.mp4
