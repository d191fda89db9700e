//! DASH-IF CPIX (Content Protection Information Exchange, v2.3): how a
//! commercial multi-DRM service hands a packager its content keys and
//! each DRM system's signalling, and how we hand ours back.
//!
//! Read: `ContentKeyList/ContentKey` (`kid`, `Data/Secret/PlainValue`,
//! base64 of 16 bytes; encrypted keys are refused), `ContentKeyUsageRule`
//! (`intendedTrackType` or a `VideoFilter`/`AudioFilter` child, which key
//! is for which tracks; with one key and no rules it is for all), and
//! `DRMSystemList/DRMSystem` (`kid`, `systemId`, and base64 `PSSH`,
//! `ContentProtectionData`, `HLSSignalingData playlist="media|master"`),
//! which go into the init segments and manifests beside ours. Written: the
//! title's keys with usage rules, and the Clear Key and common-system
//! entries.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::keys::{unhex, uuid, ContentKey};

const NS: &str = "urn:dashif:org:cpix";
const PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// The largest CPIX document read (a title's is a few KiB).
pub const MAX_LEN: usize = 4 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpixError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("not a CPIX document (root must be CPIX in {NS})")]
    NotCpix,
    #[error("the document is larger than {MAX_LEN} bytes")]
    TooLarge,
    #[error("{0} has no or a malformed kid")]
    Kid(&'static str),
    #[error("content key {kid}: {reason}")]
    Key { kid: String, reason: String },
    #[error("DRM system for {kid}: {reason}")]
    System { kid: String, reason: String },
    #[error("the document has no content key")]
    NoKeys,
    #[error("no content key for the {0} tracks (add a ContentKeyUsageRule)")]
    Uncovered(&'static str),
}

/// One DRM system's signalling for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrmSystem {
    /// The key ID (hex).
    pub kid: String,
    /// The system ID (UUID form).
    pub system_id: String,
    /// A whole `pssh` box, base64, for the init segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pssh: Option<String>,
    /// A DASH `ContentProtection` element (XML) for the adaptation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dash: Option<String>,
    /// `EXT-X-KEY` lines for media playlists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_media: Option<String>,
    /// `EXT-X-SESSION-KEY` lines for the multivariant playlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_master: Option<String>,
}

/// What a CPIX document gives: the video and audio keys and the systems.
#[derive(Debug, PartialEq, Eq)]
pub struct Cpix {
    pub video: ContentKey,
    pub audio: ContentKey,
    pub systems: Vec<DrmSystem>,
}

fn cpix<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> + 'a {
    let name = name.to_string();
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().namespace() == Some(NS) && c.tag_name().name() == name)
}

fn text_of<'a>(n: roxmltree::Node<'a, 'a>, ns: &str, name: &str) -> Option<&'a str> {
    n.descendants()
        .find(|c| c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name)
        .and_then(|c| c.text())
        .map(str::trim)
}

/// Parses a CPIX document.
pub fn parse(xml: &str) -> Result<Cpix, CpixError> {
    if xml.len() > MAX_LEN {
        return Err(CpixError::TooLarge);
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| CpixError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(NS) || root.tag_name().name() != "CPIX" {
        return Err(CpixError::NotCpix);
    }
    let mut keys: Vec<ContentKey> = Vec::new();
    for list in cpix(root, "ContentKeyList") {
        for k in cpix(list, "ContentKey") {
            keys.push(content_key(k)?);
        }
    }
    if keys.is_empty() {
        return Err(CpixError::NoKeys);
    }
    let mut video = None;
    let mut audio = None;
    for list in cpix(root, "ContentKeyUsageRuleList") {
        for rule in cpix(list, "ContentKeyUsageRule") {
            let kid = rule
                .attribute("kid")
                .and_then(unhex)
                .ok_or(CpixError::Kid("a ContentKeyUsageRule"))?;
            let key = keys
                .iter()
                .find(|k| k.kid == kid)
                .copied()
                .ok_or_else(|| CpixError::Key {
                    kid: super::keys::hex(&kid),
                    reason: "a usage rule names a key the document does not have".into(),
                })?;
            let kind = rule.attribute("intendedTrackType").unwrap_or("").to_ascii_uppercase();
            let has = |f: &str| cpix(rule, f).next().is_some();
            if kind.starts_with("VIDEO")
                || kind.starts_with("SD")
                || kind.starts_with("HD")
                || kind.starts_with("UHD")
                || has("VideoFilter")
            {
                video = video.or(Some(key));
            }
            if kind.starts_with("AUDIO") || has("AudioFilter") {
                audio = audio.or(Some(key));
            }
        }
    }
    if keys.len() == 1 {
        video = video.or(Some(keys[0]));
        audio = audio.or(Some(keys[0]));
    }
    let systems = systems(root)?;
    Ok(Cpix {
        video: video.ok_or(CpixError::Uncovered("video"))?,
        audio: audio.ok_or(CpixError::Uncovered("audio"))?,
        systems,
    })
}

fn content_key(k: roxmltree::Node) -> Result<ContentKey, CpixError> {
    let kid = k
        .attribute("kid")
        .and_then(unhex)
        .ok_or(CpixError::Kid("a ContentKey"))?;
    let bad = |reason: &str| CpixError::Key {
        kid: super::keys::hex(&kid),
        reason: reason.to_string(),
    };
    if text_of(k, "http://www.w3.org/2001/04/xmlenc#", "CipherValue").is_some() {
        return Err(bad("the key is encrypted (a document key); give it as PlainValue"));
    }
    let value = text_of(k, PSKC, "PlainValue").ok_or_else(|| bad("no Data/Secret/PlainValue"))?;
    let bytes = B64.decode(value).map_err(|_| bad("PlainValue is not base64"))?;
    let key: [u8; 16] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(&format!("the key is {} bytes, not 16", b.len())))?;
    Ok(ContentKey { kid, key })
}

fn systems(root: roxmltree::Node) -> Result<Vec<DrmSystem>, CpixError> {
    let mut out = Vec::new();
    for list in cpix(root, "DRMSystemList") {
        for s in cpix(list, "DRMSystem") {
            let kid = s
                .attribute("kid")
                .and_then(unhex)
                .ok_or(CpixError::Kid("a DRMSystem"))?;
            let bad = |reason: String| CpixError::System {
                kid: super::keys::hex(&kid),
                reason,
            };
            let system = s
                .attribute("systemId")
                .and_then(unhex)
                .ok_or_else(|| bad("no or a malformed systemId".into()))?;
            let decoded = |name: &str| -> Result<Option<String>, CpixError> {
                cpix(s, name)
                    .next()
                    .and_then(|n| n.text())
                    .map(|t| {
                        let bytes = B64.decode(t.trim()).map_err(|_| bad(format!("{name} is not base64")))?;
                        String::from_utf8(bytes).map_err(|_| bad(format!("{name} is not UTF-8 text")))
                    })
                    .transpose()
            };
            let pssh = cpix(s, "PSSH")
                .next()
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string());
            if let Some(p) = &pssh {
                check_pssh(p, &system).map_err(bad)?;
            }
            let hls = |playlist: &str| -> Result<Option<String>, CpixError> {
                let node = cpix(s, "HLSSignalingData").find(|n| n.attribute("playlist").unwrap_or("media") == playlist);
                node.and_then(|n| n.text())
                    .map(|t| {
                        let bytes = B64
                            .decode(t.trim())
                            .map_err(|_| bad("HLSSignalingData is not base64".into()))?;
                        String::from_utf8(bytes).map_err(|_| bad("HLSSignalingData is not UTF-8 text".into()))
                    })
                    .transpose()
            };
            out.push(DrmSystem {
                kid: super::keys::hex(&kid),
                system_id: uuid(&system),
                pssh,
                dash: decoded("ContentProtectionData")?.map(|x| dash_element(&x, &system)),
                hls_media: hls("media")?,
                hls_master: hls("master")?,
            });
        }
    }
    Ok(out)
}

/// A `pssh` given in base64 must be one whole `pssh` box of its system.
fn check_pssh(b64: &str, system: &[u8; 16]) -> Result<(), String> {
    let b = B64.decode(b64).map_err(|_| "PSSH is not base64".to_string())?;
    let size = b
        .get(..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize);
    if size != Some(b.len()) || b.get(4..8) != Some(b"pssh") || b.len() < 32 {
        return Err("PSSH is not one whole pssh box".into());
    }
    if b.get(12..28) != Some(system.as_slice()) {
        return Err("PSSH is for another system".into());
    }
    Ok(())
}

/// ContentProtectionData as a whole element (CPIX 2.3 gives the element;
/// earlier documents its children, which are wrapped here).
fn dash_element(xml: &str, system: &[u8; 16]) -> String {
    let xml = xml.trim();
    if xml.starts_with("<ContentProtection") {
        xml.to_string()
    } else {
        format!(
            "<ContentProtection schemeIdUri=\"urn:uuid:{}\">{xml}</ContentProtection>",
            uuid(system)
        )
    }
}

/// A CPIX document of a title's keys (usage rules by track type) with
/// the Clear Key and common-system entries.
pub fn write(title: &str, video: ContentKey, audio: ContentKey, systems: &[DrmSystem]) -> String {
    let mut keys = String::new();
    let mut rules = String::new();
    for (k, kind, filter) in [(video, "VIDEO", "VideoFilter"), (audio, "AUDIO", "AudioFilter")] {
        keys.push_str(&format!(
            "    <cpix:ContentKey kid=\"{}\"><cpix:Data><pskc:Secret><pskc:PlainValue>{}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>\n",
            uuid(&k.kid),
            B64.encode(k.key)
        ));
        rules.push_str(&format!(
            "    <cpix:ContentKeyUsageRule kid=\"{}\" intendedTrackType=\"{kind}\"><cpix:{filter}/></cpix:ContentKeyUsageRule>\n",
            uuid(&k.kid)
        ));
    }
    let mut drm = String::new();
    for k in [video, audio] {
        drm.push_str(&format!(
            "    <cpix:DRMSystem kid=\"{}\" systemId=\"{}\"><cpix:PSSH>{}</cpix:PSSH></cpix:DRMSystem>\n",
            uuid(&k.kid),
            uuid(&super::COMMON_SYSTEM_ID),
            B64.encode(super::pssh(&k.kid))
        ));
    }
    for s in systems {
        let pssh = s
            .pssh
            .as_ref()
            .map(|p| format!("<cpix:PSSH>{p}</cpix:PSSH>"))
            .unwrap_or_default();
        let kid = unhex(&s.kid).map(|k| uuid(&k)).unwrap_or_default();
        drm.push_str(&format!(
            "    <cpix:DRMSystem kid=\"{kid}\" systemId=\"{}\">{pssh}",
            s.system_id
        ));
        if let Some(d) = &s.dash {
            drm.push_str(&format!(
                "<cpix:ContentProtectionData>{}</cpix:ContentProtectionData>",
                B64.encode(d)
            ));
        }
        for (playlist, text) in [("media", &s.hls_media), ("master", &s.hls_master)] {
            if let Some(t) = text {
                drm.push_str(&format!(
                    "<cpix:HLSSignalingData playlist=\"{playlist}\">{}</cpix:HLSSignalingData>",
                    B64.encode(t)
                ));
            }
        }
        drm.push_str("</cpix:DRMSystem>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cpix:CPIX xmlns:cpix=\"{NS}\" xmlns:pskc=\"{PSKC}\" contentId=\"{title}\" version=\"2.3\">\n  \
         <cpix:ContentKeyList>\n{keys}  </cpix:ContentKeyList>\n  <cpix:DRMSystemList>\n{drm}  </cpix:DRMSystemList>\n  \
         <cpix:ContentKeyUsageRuleList>\n{rules}  </cpix:ContentKeyUsageRuleList>\n</cpix:CPIX>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDEVINE: &str = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";

    fn widevine_pssh() -> String {
        let mut b = vec![0, 0, 0, 36];
        b.extend_from_slice(b"pssh");
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&unhex(WIDEVINE).unwrap());
        b.extend_from_slice(&[0, 0, 0, 4, 1, 2, 3, 4]);
        B64.encode(b)
    }

    #[test]
    fn a_written_document_reads_back_with_its_systems() {
        let video = ContentKey {
            kid: [1; 16],
            key: [2; 16],
        };
        let audio = ContentKey {
            kid: [3; 16],
            key: [4; 16],
        };
        let wv = DrmSystem {
            kid: super::super::keys::hex(&[1; 16]),
            system_id: WIDEVINE.into(),
            pssh: Some(widevine_pssh()),
            dash: Some(format!("<ContentProtection schemeIdUri=\"urn:uuid:{WIDEVINE}\"/>")),
            hls_media: Some("#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"skd://x\"".into()),
            hls_master: None,
        };
        let xml = write("t", video, audio, std::slice::from_ref(&wv));
        let back = parse(&xml).unwrap();
        assert_eq!((back.video, back.audio), (video, audio));
        assert!(back.systems.contains(&wv), "{:?}", back.systems);
        assert_eq!(back.systems.len(), 3, "two common-system entries and Widevine");
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let one = |key: &str, extra: &str| {
            format!(
                "<cpix:CPIX xmlns:cpix=\"{NS}\" xmlns:pskc=\"{PSKC}\"><cpix:ContentKeyList><cpix:ContentKey kid=\"01010101-0101-0101-0101-010101010101\"><cpix:Data><pskc:Secret><pskc:PlainValue>{key}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList>{extra}</cpix:CPIX>"
            )
        };
        let k16 = B64.encode([7u8; 16]);
        let single = parse(&one(&k16, "")).unwrap();
        assert_eq!(single.video, single.audio, "one key and no rules: for every track");
        assert!(matches!(parse("<cpix"), Err(CpixError::Xml(_))));
        assert_eq!(parse("<CPIX/>"), Err(CpixError::NotCpix));
        assert!(
            matches!(parse(&one(&B64.encode([7u8; 8]), "")), Err(CpixError::Key { reason, .. }) if reason.contains("8 bytes"))
        );
        let video_only = "<cpix:ContentKeyUsageRuleList><cpix:ContentKeyUsageRule kid=\"01010101-0101-0101-0101-010101010101\" intendedTrackType=\"VIDEO\"/></cpix:ContentKeyUsageRuleList>";
        let two = one(&k16, video_only).replace(
            "</cpix:ContentKeyList>",
            &format!("<cpix:ContentKey kid=\"02020202-0202-0202-0202-020202020202\"><cpix:Data><pskc:Secret><pskc:PlainValue>{k16}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList>"),
        );
        assert_eq!(parse(&two), Err(CpixError::Uncovered("audio")));
        let wrong_system = format!(
            "<cpix:DRMSystemList><cpix:DRMSystem kid=\"01010101-0101-0101-0101-010101010101\" systemId=\"9a04f079-9840-4286-ab92-e65be0885f95\"><cpix:PSSH>{}</cpix:PSSH></cpix:DRMSystem></cpix:DRMSystemList>",
            widevine_pssh()
        );
        assert!(
            matches!(parse(&one(&k16, &wrong_system)), Err(CpixError::System { reason, .. }) if reason.contains("another system"))
        );
        assert!(matches!(
            parse(&one(&k16, "").replace("01010101-0101", "zz")),
            Err(CpixError::Kid(_))
        ));
    }
}
