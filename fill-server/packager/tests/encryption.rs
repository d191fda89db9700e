//! Common Encryption checked by a real decoder: one H.264 + AAC source
//! (8 s: two segments, so fragments follow each other)
//! packaged in the clear, with `cenc` and with `cbcs`; ffmpeg, given each
//! track's key from the key store, decodes every encrypted rendition to
//! exactly the frames of the clear one (same MD5 of the decoded picture
//! and sound), and without the key cannot. The `mdat` bytes differ from
//! the clear packaging's while the sizes match (sample encryption keeps
//! lengths), no file of the origin store holds a key, and bad options
//! leave the origin store and the key store as they were.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nearcast_packager::index::TitleIndex;
use nearcast_testkit::TempDir;

const LICENSE: &str = "http://127.0.0.1:9/v1/license";

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the tool is installed")
}

/// An 8 s H.264 (keyframe every second) + AAC source.
fn source(dir: &Path) -> PathBuf {
    let out = dir.join("src.mp4");
    let o = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25:duration=8",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=8",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-c:a",
            "aac",
        ])
        .arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn package(dir: &Path, title: &str, extra: &[&str], input: &Path) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["package", "--title", title, "--store"])
        .arg(dir.join("origin"))
        .args(extra)
        .arg(input))
}

/// A rendition's init + media segments as one fragmented MP4 file.
fn joined(dir: &Path, title: &str, rendition: &str) -> PathBuf {
    let rdir = dir.join("origin").join(title).join(rendition);
    let mut names: Vec<_> = std::fs::read_dir(&rdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    let mut bytes = std::fs::read(rdir.join("init.mp4")).unwrap();
    for n in names.iter().filter(|n| n.to_string_lossy().ends_with(".m4s")) {
        bytes.extend(std::fs::read(rdir.join(n)).unwrap());
    }
    let out = dir.join(format!("{title}-{rendition}.mp4"));
    std::fs::write(&out, bytes).unwrap();
    out
}

/// The MD5 of what ffmpeg decodes from `file` (with `key` if given) and
/// whether it reported an error. The file goes in on a pipe: on a seekable
/// file Debian's ffmpeg 5.1 reads every `moof` before the first packet and
/// then decrypts every sample with the last fragment's `senc` (fixed in
/// later releases by looking up each packet's fragment); read as a stream
/// it takes the fragments in turn.
fn decoded(file: &Path, key: Option<&str>) -> (String, bool) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let o = run(cmd
        .args(["-i", "pipe:0", "-f", "md5", "-"])
        .stdin(std::fs::File::open(file).expect("the file to decode")));
    let clean = o.status.success() && o.stderr.is_empty();
    (String::from_utf8_lossy(&o.stdout).trim().to_string(), clean)
}

/// Frames ffmpeg decodes from `file` (with `key`), on a pipe.
fn frames(file: &Path, key: Option<&str>) -> usize {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(k) = key {
        cmd.args(["-decryption_key", k]);
    }
    let o = run(cmd
        .args(["-i", "pipe:0", "-f", "framemd5", "-"])
        .stdin(std::fs::File::open(file).expect("the file to decode")));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// Frames of the source's first stream of `kind` (`v`, `a`), by ffmpeg.
fn source_frames(file: &Path, kind: &str) -> usize {
    let o = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-map", &format!("0:{kind}:0"), "-f", "framemd5", "-"]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// The title's key for its `video` or `audio` tracks, as hex.
fn key(dir: &Path, title: &str, tracks: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("keys").join(format!("{title}.json"))).unwrap()).unwrap();
    let k = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tracks"] == tracks)
        .unwrap();
    k["key"].as_str().unwrap().to_string()
}

/// The `mdat` payloads of a segment file.
/// The sample bytes of a segment: every `mdat`'s body, in order (video
/// segments hold a fragment per keyframe and one per run between).
fn mdat(file: &Path) -> Vec<u8> {
    let data = std::fs::read(file).unwrap();
    let (mut at, mut out) = (0, Vec::new());
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if &data[at + 4..at + 8] == b"mdat" {
            out.extend_from_slice(&data[at + 8..at + size]);
        }
        at += size.max(8);
    }
    assert!(!out.is_empty(), "no mdat in {}", file.display());
    out
}

fn encrypted_like_clear(dir: &Path, scheme: &str) {
    let ks = dir.join("keys");
    let o = package(
        dir,
        scheme,
        &[
            "--encrypt",
            scheme,
            "--key-store",
            ks.to_str().unwrap(),
            "--license-url",
            LICENSE,
        ],
        &dir.join("src.mp4"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index: TitleIndex =
        serde_json::from_slice(&std::fs::read(dir.join("origin").join(scheme).join("index.json")).unwrap()).unwrap();
    let p = index
        .protection
        .as_ref()
        .expect("the index says the title is encrypted");
    assert_eq!(
        (p.scheme.as_str(), p.license_url.as_str(), p.kids.len()),
        (scheme, LICENSE, 2)
    );
    for (rendition, tracks) in [("180p", "video"), ("audio-und", "audio")] {
        let clear = decoded(&joined(dir, "clear", rendition), None);
        let enc = joined(dir, scheme, rendition);
        let with_key = decoded(&enc, Some(&key(dir, scheme, tracks)));
        assert_eq!(
            with_key, clear,
            "{scheme} {rendition}: decrypted frames differ from the clear packaging"
        );
        // The source's frame count, for video (audio read from a pipe
        // decodes one frame more: AAC's priming frame, which the source's
        // edit list hides).
        if tracks == "video" {
            let want = source_frames(&dir.join("src.mp4"), "v");
            assert_eq!(
                frames(&enc, Some(&key(dir, scheme, tracks))),
                want,
                "{scheme}: not the source's frame count"
            );
        }
        let without = decoded(&enc, None);
        assert!(
            !without.1 || without.0 != clear.0,
            "{scheme} {rendition} decodes without its key"
        );
        let (c, e) = (
            mdat(&dir.join("origin/clear").join(rendition).join("seg-00001.m4s")),
            mdat(&dir.join("origin").join(scheme).join(rendition).join("seg-00001.m4s")),
        );
        assert_eq!(c.len(), e.len());
        let differ = c.iter().zip(&e).filter(|(a, b)| a != b).count() as f64 / c.len() as f64;
        // cbcs video encrypts one block in ten; everything else nearly all.
        let least = if scheme == "cbcs" && tracks == "video" {
            0.05
        } else {
            0.9
        };
        assert!(
            differ > least,
            "{scheme} {rendition}: only {:.0} % of the mdat bytes differ",
            differ * 100.0
        );
    }
    manifests_signal_the_keys(dir, scheme, &p.kids[0]);
}

/// The MPD and a media playlist of `scheme`'s title name its keys.
fn manifests_signal_the_keys(dir: &Path, scheme: &str, kid: &str) {
    let mpd = std::fs::read_to_string(dir.join("origin").join(scheme).join("manifest.mpd")).unwrap();
    assert!(
        mpd.contains(&format!("value=\"{scheme}\" cenc:default_KID=\"{}\"", kid)),
        "{mpd}"
    );
    assert!(mpd.contains(&format!("<dashif:Laurl>{LICENSE}</dashif:Laurl>")));
    let method = if scheme == "cenc" {
        "SAMPLE-AES-CTR"
    } else {
        "SAMPLE-AES"
    };
    let playlist = std::fs::read_to_string(dir.join("origin").join(scheme).join("180p/index.m3u8")).unwrap();
    assert!(
        playlist.contains(&format!("#EXT-X-KEY:METHOD={method},URI=\"data:text/plain;base64,")),
        "{playlist}"
    );
    assert!(playlist.contains("KEYFORMAT=\"org.w3.clearkey\""));
}

/// Every byte of every file under `dir`.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn cenc_and_cbcs_decrypt_to_the_clear_frames_and_keys_stay_out_of_the_origin() {
    let dir = TempDir::new("pkg-encryption");
    let src = source(&dir);
    assert!(package(&dir, "clear", &[], &src).status.success());
    for scheme in ["cenc", "cbcs"] {
        encrypted_like_clear(&dir, scheme);
    }
    // No key, in bytes or hex, anywhere in the origin store.
    let origin = tree(&dir.join("origin"));
    for title in ["cenc", "cbcs"] {
        for tracks in ["video", "audio"] {
            let hex = key(&dir, title, tracks);
            let raw: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            for (path, data) in &origin {
                assert!(
                    !data.windows(16).any(|w| w == raw.as_slice()),
                    "{title} key in {}",
                    path.display()
                );
                assert!(
                    !String::from_utf8_lossy(data).contains(&hex),
                    "{title} key in {}",
                    path.display()
                );
            }
        }
    }
    // Packaging again keeps the keys.
    let before = key(&dir, "cenc", "video");
    let ks = dir.join("keys");
    let again = package(
        &dir,
        "cenc",
        &[
            "--encrypt",
            "cenc",
            "--key-store",
            ks.to_str().unwrap(),
            "--license-url",
            LICENSE,
        ],
        &src,
    );
    assert!(again.status.success());
    assert_eq!(key(&dir, "cenc", "video"), before);
}

#[test]
fn bad_encryption_options_write_nothing() {
    let dir = TempDir::new("pkg-encryption-bad");
    let src = source(&dir);
    let ks = dir.join("keys");
    let ks = ks.to_str().unwrap();
    let inside = dir.join("origin/keys");
    let av1 = dir.join("av1.mp4");
    let o = run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25:duration=1",
            "-c:v",
            "libsvtav1",
            "-g",
            "25",
        ])
        .arg(&av1));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(dir.join("bad-keys")).unwrap();
    std::fs::write(dir.join("bad-keys/t.json"), br#"{"title":"t","scheme":"cenc","keys":[{"tracks":"video","kid":"00112233445566778899aabbccddeeff","key":"0011"},{"tracks":"audio","kid":"00112233445566778899aabbccddeeff","key":"00112233445566778899aabbccddeeff"}]}"#).unwrap();
    let bad_keys = dir.join("bad-keys");
    let cases: Vec<(Vec<&str>, &Path, &str)> = vec![
        (
            vec!["--encrypt", "cens", "--key-store", ks, "--license-url", LICENSE],
            &src,
            "unknown protection scheme 'cens'",
        ),
        (vec!["--encrypt", "cenc", "--license-url", LICENSE], &src, "--key-store"),
        (
            vec!["--encrypt", "cenc", "--key-store", ks, "--license-url", "/v1/license"],
            &src,
            "not an absolute http(s) URL",
        ),
        (
            vec![
                "--encrypt",
                "cenc",
                "--key-store",
                inside.to_str().unwrap(),
                "--license-url",
                LICENSE,
            ],
            &src,
            "inside the origin store",
        ),
        (
            vec!["--encrypt", "cenc", "--key-store", ks, "--license-url", LICENSE],
            &av1,
            "cannot encrypt av01 video",
        ),
        (
            vec![
                "--encrypt",
                "cenc",
                "--key-store",
                bad_keys.to_str().unwrap(),
                "--license-url",
                LICENSE,
            ],
            &src,
            "key must be 32 hex digits",
        ),
    ];
    let bad_before = tree(&bad_keys);
    for (args, input, says) in cases {
        let o = package(&dir, "t", &args, input);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{args:?}: {err}");
        assert!(
            tree(&dir.join("origin")).is_empty(),
            "{args:?} wrote to the origin store"
        );
        assert!(tree(&dir.join("keys")).is_empty(), "{args:?} wrote a key");
    }
    assert_eq!(tree(&bad_keys), bad_before, "a bad key file is left as it was");
}

#[test]
fn bad_cpix_documents_write_nothing() {
    let dir = TempDir::new("pkg-cpix-bad");
    let src = source(&dir);
    let ks = dir.join("keys");
    let ks = ks.to_str().unwrap();
    let cpix_dir = dir.join("cpix");
    std::fs::create_dir_all(&cpix_dir).unwrap();
    let bad_cpix = |name: &str, xml: &str| {
        let p = cpix_dir.join(name);
        std::fs::write(&p, xml).unwrap();
        p
    };
    let malformed = bad_cpix(
        "malformed.xml",
        "<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\"><cpix:ContentKeyList>",
    );
    let video_only = bad_cpix(
        "video-only.xml",
        &cpix_doc(&[7; 16], &[8; 16], &[9; 16], &[10; 16], false)
            .replace("intendedTrackType=\"AUDIO\"", "intendedTrackType=\"VIDEO\""),
    );
    let short = bad_cpix(
        "short.xml",
        &cpix_doc(&[7; 16], &[8; 16], &[9; 16], &[10; 16], false).replace(&b64(&[8; 16]), &b64(&[8; 8])),
    );
    let cpix_cases: Vec<(&Path, &str)> = vec![
        (&malformed, "not XML"),
        (&video_only, "no content key for the audio tracks"),
        (&short, "the key is 8 bytes, not 16"),
    ];
    for (doc, says) in cpix_cases {
        let args = [
            "--encrypt",
            "cenc",
            "--key-store",
            ks,
            "--license-url",
            LICENSE,
            "--cpix",
            doc.to_str().unwrap(),
        ];
        let o = package(&dir, "t", &args, &src);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{doc:?}: {err}");
        assert!(
            tree(&dir.join("origin")).is_empty() && tree(&dir.join("keys")).is_empty(),
            "{doc:?} wrote something"
        );
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

const WIDEVINE: &str = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";

/// A Widevine `pssh` box (its data made up: Widevine's own is protobuf).
fn widevine_pssh() -> Vec<u8> {
    let mut b = vec![0, 0, 0, 36];
    b.extend_from_slice(b"pssh");
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&nearcast_packager::cenc::keys::unhex(WIDEVINE).unwrap());
    b.extend_from_slice(&[0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]);
    b
}

/// A multi-DRM service's CPIX document: a video and an audio key, and
/// Widevine's signalling for the video key (`with_system`).
fn cpix_doc(vkid: &[u8; 16], vkey: &[u8; 16], akid: &[u8; 16], akey: &[u8; 16], with_system: bool) -> String {
    use nearcast_packager::cenc::keys::uuid;
    let key = |kid: &[u8; 16], k: &[u8; 16]| {
        format!("<cpix:ContentKey kid=\"{}\" commonEncryptionScheme=\"cenc\"><cpix:Data><pskc:Secret><pskc:PlainValue>{}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>", uuid(kid), b64(k))
    };
    let system = if with_system {
        let dash = format!("<ContentProtection schemeIdUri=\"urn:uuid:{WIDEVINE}\" value=\"Widevine\"><cenc:pssh>{}</cenc:pssh></ContentProtection>", b64(&widevine_pssh()));
        let hls = format!("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;base64,{}\",KEYFORMAT=\"urn:uuid:{WIDEVINE}\",KEYFORMATVERSIONS=\"1\"", b64(&widevine_pssh()));
        format!(
            "<cpix:DRMSystemList><cpix:DRMSystem kid=\"{}\" systemId=\"{WIDEVINE}\"><cpix:PSSH>{}</cpix:PSSH><cpix:ContentProtectionData>{}</cpix:ContentProtectionData><cpix:HLSSignalingData playlist=\"media\">{}</cpix:HLSSignalingData></cpix:DRMSystem></cpix:DRMSystemList>",
            uuid(vkid), b64(&widevine_pssh()), b64(dash.as_bytes()), b64(hls.as_bytes())
        )
    } else {
        String::new()
    };
    format!(
        "<?xml version=\"1.0\"?><cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\" xmlns:pskc=\"urn:ietf:params:xml:ns:keyprov:pskc\"><cpix:ContentKeyList>{}{}</cpix:ContentKeyList>{system}<cpix:ContentKeyUsageRuleList><cpix:ContentKeyUsageRule kid=\"{}\" intendedTrackType=\"VIDEO\"/><cpix:ContentKeyUsageRule kid=\"{}\" intendedTrackType=\"AUDIO\"/></cpix:ContentKeyUsageRuleList></cpix:CPIX>",
        key(vkid, vkey), key(akid, akey), uuid(vkid), uuid(akid)
    )
}

#[test]
fn keys_and_another_systems_signalling_come_from_cpix_and_go_back_out() {
    let dir = TempDir::new("pkg-cpix");
    let src = source(&dir);
    assert!(package(&dir, "clear", &[], &src).status.success());
    let (vkid, vkey, akid, akey) = ([0x11; 16], [0x22; 16], [0x33; 16], [0x44; 16]);
    let doc = dir.join("service.cpix.xml");
    std::fs::write(&doc, cpix_doc(&vkid, &vkey, &akid, &akey, true)).unwrap();
    let ks = dir.join("keys");
    let args = [
        "--encrypt",
        "cenc",
        "--key-store",
        ks.to_str().unwrap(),
        "--license-url",
        LICENSE,
        "--cpix",
        doc.to_str().unwrap(),
    ];
    let o = package(&dir, "t", &args, &src);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The service's keys are the title's: ffmpeg decrypts with them.
    let hex = nearcast_packager::cenc::keys::hex;
    assert_eq!(key(&dir, "t", "video"), hex(&vkey));
    let clear = decoded(&joined(&dir, "clear", "180p"), None);
    assert_eq!(decoded(&joined(&dir, "t", "180p"), Some(&hex(&vkey))), clear);
    // Widevine's pssh in the video init segment, its signalling in the manifests.
    let init = std::fs::read(dir.join("origin/t/180p/init.mp4")).unwrap();
    assert!(
        init.windows(36).any(|w| w == widevine_pssh().as_slice()),
        "no Widevine pssh in the init segment"
    );
    let audio_init = std::fs::read(dir.join("origin/t/audio-und/init.mp4")).unwrap();
    assert!(
        !audio_init.windows(36).any(|w| w == widevine_pssh().as_slice()),
        "Widevine's pssh is for the video key only"
    );
    let mpd = std::fs::read_to_string(dir.join("origin/t/manifest.mpd")).unwrap();
    assert!(
        mpd.contains(&format!(
            "<ContentProtection schemeIdUri=\"urn:uuid:{WIDEVINE}\" value=\"Widevine\">"
        )),
        "{mpd}"
    );
    let playlist = std::fs::read_to_string(dir.join("origin/t/180p/index.m3u8")).unwrap();
    assert!(
        playlist.contains(&format!("KEYFORMAT=\"urn:uuid:{WIDEVINE}\"")),
        "{playlist}"
    );
    // Exported, the document reads back to the same keys and system.
    let out = run(Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
        .args(["cpix", "--title", "t", "--key-store"])
        .arg(&ks));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = nearcast_packager::cenc::cpix::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!((back.video.key, back.audio.key, back.audio.kid), (vkey, akey, akid));
    assert!(back
        .systems
        .iter()
        .any(|s| s.system_id == WIDEVINE && s.pssh.as_deref() == Some(b64(&widevine_pssh()).as_str())));
}

#[test]
fn a_key_per_rung_group_keeps_sd_and_hd_apart() {
    let dir = TempDir::new("pkg-rung-keys");
    let sd = source(&dir);
    let hd = dir.join("hd.mp4");
    let o = run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=4",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .arg(&hd));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ks = dir.join("keys");
    let both = |title: &str, extra: &[&str]| {
        let o = run(Command::new(env!("CARGO_BIN_EXE_nearcast-packager"))
            .args(["package", "--title", title, "--store"])
            .arg(dir.join("origin"))
            .args(extra)
            .arg(&sd)
            .arg(&hd));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    both("clear", &[]);
    both(
        "t",
        &[
            "--encrypt",
            "cenc",
            "--key-store",
            ks.to_str().unwrap(),
            "--license-url",
            LICENSE,
            "--key-per-rung-group",
        ],
    );
    let (sd_key, hd_key) = (key(&dir, "t", "video-sd"), key(&dir, "t", "video-hd"));
    assert_ne!(sd_key, hd_key);
    let clear = decoded(&joined(&dir, "clear", "720p"), None);
    let hd_file = joined(&dir, "t", "720p");
    assert_eq!(decoded(&hd_file, Some(&hd_key)), clear, "the HD key opens the HD rung");
    let with_sd = decoded(&hd_file, Some(&sd_key));
    assert!(!with_sd.1 || with_sd.0 != clear.0, "the SD key opens the HD rung");
    assert_eq!(
        decoded(&joined(&dir, "t", "180p"), Some(&sd_key)),
        decoded(&joined(&dir, "clear", "180p"), None)
    );
    // Each representation names its own key.
    let mpd = std::fs::read_to_string(dir.join("origin/t/manifest.mpd")).unwrap();
    let kids: Vec<&str> = mpd
        .split("cenc:default_KID=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert_eq!(
        kids.len(),
        4,
        "two video representations, the trick set and the audio set: {mpd}"
    );
    assert_ne!(kids[0], kids[1]);
    // The trick set is the SD rung's keyframes, under its key.
    assert!(kids[2] == kids[0] || kids[2] == kids[1], "{mpd}");
    let index: TitleIndex = serde_json::from_slice(&std::fs::read(dir.join("origin/t/index.json")).unwrap()).unwrap();
    assert_eq!(index.protection.unwrap().kids.len(), 3);
}
