//! Bad input: each gives a clear error naming the file and the problem,
//! a non-zero exit, and leaves the origin store as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use nearcast_testkit::TempDir;

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("pkg-bad-{name}"))
}

fn make_mp4(path: &Path, faststart: bool) {
    let mut args = vec![
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=4",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-c:a",
        "aac",
    ];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    let st = Command::new("ffmpeg").args(&args).arg(path).status().unwrap();
    assert!(st.success());
}

fn package(store: &Path, title: &str, input: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", title, "--store"])
        .arg(store)
        .arg(input)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every file under `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn patch(data: &mut [u8], kind: &[u8; 4], at: usize, bytes: &[u8]) {
    let i = data
        .windows(4)
        .position(|w| w == kind)
        .unwrap_or_else(|| panic!("no {kind:?}"));
    data[i + at..i + at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn every_bad_input_is_refused_and_the_store_is_untouched() {
    let dir = temp_dir("all");
    let store = dir.join("store");
    let (good_end, good_fast) = (dir.join("good-end.mp4"), dir.join("good-fast.mp4"));
    make_mp4(&good_end, false);
    make_mp4(&good_fast, true);
    // A title already in the store must survive every failed attempt.
    let (ok, err) = package(&store, "title", &good_fast);
    assert!(ok, "{err}");
    let before = snapshot(&store);

    let end = std::fs::read(&good_end).unwrap();
    let fast = std::fs::read(&good_fast).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.mp4", Vec::new(), "the file is empty"),
        (
            "text.mp4",
            b"this is a text file, not a video at all\n".to_vec(),
            "not an MP4 file",
        ),
        (
            "truncated.mp4",
            end[..end.len() / 2].to_vec(),
            "the file is truncated: its top-level 'mdat' box needs",
        ),
        (
            "cut-mdat.mp4",
            fast[..fast.len() * 2 / 3].to_vec(),
            "past the end of the file",
        ),
    ];
    let mut no_key = fast.clone();
    patch(&mut no_key, b"stss", 8, &[0, 0, 0, 0]);
    cases.push(("no-keyframe.mp4", no_key, "has no keyframe"));
    let mut huge = fast.clone();
    patch(&mut huge, b"stsz", 12, &[0x7f, 0xff, 0xff, 0xff]);
    cases.push(("forged-count.mp4", huge, "entries do not fit"));
    let mut past = fast.clone();
    patch(&mut past, b"stco", 12, &[0x7f, 0xff, 0xff, 0xff]);
    cases.push(("offset-past-end.mp4", past, "past the end of the file"));

    for (name, bytes, want) in cases {
        let input = dir.join(name);
        std::fs::write(&input, bytes).unwrap();
        for title in ["title", "fresh"] {
            let (ok, err) = package(&store, title, &input);
            assert!(!ok, "{name} was accepted");
            assert!(err.contains(name), "{name}: error does not name the file: {err}");
            assert!(err.contains(want), "{name}: expected '{want}' in: {err}");
            assert_eq!(snapshot(&store), before, "{name}: store changed");
        }
    }
    let (ok, err) = package(&store, "../escape", &good_fast);
    assert!(!ok && err.contains("not a plain name"), "{err}");
    assert_eq!(snapshot(&store), before);
}
