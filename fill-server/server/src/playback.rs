//! Manifests rewritten for one player: every URL points at the appliance
//! steering chose (or, in DASH, at each candidate in order, for failover)
//! and carries a title-wide token bound to the player's prefix.
//!
//! HLS: the multivariant playlist's URIs lead back to the fill server's
//! `/v1/play/...` media playlists (with the chosen box and the token), and
//! those list segment URLs on the box itself. DASH: `BaseURL`s in
//! preference order, and the token on the SegmentTemplate's URLs.
//!
//! An encrypted title's license URLs become the play session's
//! (`{fill}/v1/license/s/{session}`): the MPD's `dashif:Laurl`, the media
//! playlists' `identity` key URIs, and an `EXT-X-SESSION-DATA` in the
//! multivariant playlist for players that take the license URL from the
//! page (hls.js). Key tags are never pointed at a box.

/// Appends `query` (already encoded, no `?`) to a URI.
fn with_query(uri: &str, query: &str) -> String {
    if query.is_empty() {
        return uri.to_string();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// A token as a path segment (`/t/{token}/…`, which boxes and the origin
/// take): its `/` (in the client prefix) and `%` percent-encoded.
pub fn path_token(token: &str) -> String {
    token.replace('%', "%25").replace('/', "%2F")
}

/// Rewrites the URIs of an HLS playlist: lines that are not tags, and
/// `URI="…"` attributes of tags. `map` gets each original URI.
fn rewrite_hls(text: &str, map: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            out.push('\n');
            continue;
        }
        let key = t.starts_with("#EXT-X-KEY:") || t.starts_with("#EXT-X-SESSION-KEY:");
        if !t.starts_with('#') {
            out.push_str(&map(t));
        } else if let Some(start) = t.find("URI=\"").filter(|_| !key) {
            let from = start + 5;
            match t[from..].find('"') {
                Some(len) => {
                    out.push_str(&t[..from]);
                    out.push_str(&map(&t[from..from + len]));
                    out.push_str(&t[from + len..]);
                }
                None => out.push_str(t),
            }
        } else {
            out.push_str(t);
        }
        out.push('\n');
    }
    out
}

/// One pathway of a multivariant playlist: its id, and how a media
/// playlist URI `uri` of the source becomes `{prefix}{uri}?{query}`.
pub struct Pathway<'a> {
    pub id: &'a str,
    pub prefix: String,
    pub query: String,
}

/// The multivariant playlist with one copy of its variants per pathway
/// (HLS content steering, best pathway first). In pathway `p`, each media
/// playlist URI becomes `{p.prefix}{uri}?{p.query}` (for a title: served
/// by the fill server, listing segments on `p`; for a live event: on the
/// box itself), rendition groups are renamed `{group}.{p}` so every
/// pathway has its own audio, and variants carry `PATHWAY-ID`. The player
/// fetches `steering_uri` for the current order and moves to the next
/// pathway by itself when one fails.
pub fn master(text: &str, pathways: &[Pathway], steering_uri: &str) -> String {
    // Tags before the first rendition or variant are playlist-wide.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let body_at = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-MEDIA:") || l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap_or(lines.len());
    let mut out = String::with_capacity(text.len() * (pathways.len() + 1));
    for l in lines[..body_at].iter().filter(|l| !l.is_empty()) {
        out.push_str(l);
        out.push('\n');
    }
    if let Some(first) = pathways.first() {
        out.push_str(&format!(
            "#EXT-X-CONTENT-STEERING:SERVER-URI=\"{steering_uri}\",PATHWAY-ID=\"{}\"\n",
            first.id
        ));
    }
    for p in pathways {
        out.push('\n');
        let copy = lines[body_at..]
            .iter()
            .map(|l| {
                let l = rename_group(l, "GROUP-ID", p.id);
                let l = rename_group(&l, "AUDIO", p.id);
                let l = rename_group(&l, "SUBTITLES", p.id);
                // Subtitle and image renditions name their pathway too:
                // Shaka Player (4.16) gives a steered subtitle playlist no
                // location otherwise and never loads it. Other players
                // ignore the attribute there.
                let pathway_tag = [
                    "#EXT-X-STREAM-INF:",
                    "#EXT-X-I-FRAME-STREAM-INF:",
                    "#EXT-X-IMAGE-STREAM-INF:",
                    "#EXT-X-MEDIA:TYPE=SUBTITLES,",
                ];
                if pathway_tag.iter().any(|t| l.starts_with(t)) {
                    format!("{l},PATHWAY-ID=\"{}\"", p.id)
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&rewrite_hls(&copy, |uri| {
            with_query(&format!("{}{uri}", p.prefix), &p.query)
        }));
    }
    out
}

/// In a tag line, the quoted attribute `name="g"` becomes `name="g.{pathway}"`.
fn rename_group(line: &str, name: &str, pathway: &str) -> String {
    if !line.starts_with("#EXT") {
        return line.to_string();
    }
    let found = [':', ',']
        .iter()
        .find_map(|sep| line.find(&format!("{sep}{name}=\"")).map(|i| i + name.len() + 3));
    let Some(from) = found else {
        return line.to_string();
    };
    match line[from..].find('"') {
        Some(len) => format!("{}.{pathway}{}", &line[..from + len], &line[from + len..]),
        None => line.to_string(),
    }
}

/// A media playlist: each segment and map URI becomes `{base}/{uri}?{query}`
/// where `base` is the rendition's folder on the chosen appliance.
pub fn media(text: &str, base: &str, query: &str) -> String {
    rewrite_hls(text, |uri| {
        with_query(&format!("{}/{uri}", base.trim_end_matches('/')), query)
    })
}

/// A DASH MPD: `bases` as MPD-level `BaseURL`s (best first) and `query` on
/// every `initialization`/`media` template.
pub fn mpd(text: &str, bases: &[String], query: &str) -> String {
    let mut out = text.to_string();
    for attr in ["initialization=\"", "media=\"", "sourceURL=\""] {
        let mut result = String::with_capacity(out.len() + 64);
        let mut rest = out.as_str();
        while let Some(i) = rest.find(attr) {
            let from = i + attr.len();
            let Some(len) = rest[from..].find('"') else {
                break;
            };
            result.push_str(&rest[..from]);
            result.push_str(&with_query(&rest[from..from + len], &query.replace('&', "&amp;")));
            rest = &rest[from + len..];
        }
        result.push_str(rest);
        out = result;
    }
    let Some(open) = out.find("<MPD").and_then(|i| out[i..].find('>').map(|j| i + j + 1)) else {
        return out;
    };
    let urls: String = bases
        .iter()
        .map(|b| format!("\n  <BaseURL>{}</BaseURL>", xml_escape(b)))
        .collect();
    out.insert_str(open, &urls);
    out
}

/// The data id of the license URL in a multivariant playlist.
pub const LICENSE_DATA_ID: &str = "com.nearcast.license";

/// The multivariant playlist with the session's license URL as session
/// data (after `#EXTM3U`).
pub fn master_license(text: &str, license: &str) -> String {
    let line = format!("#EXT-X-SESSION-DATA:DATA-ID=\"{LICENSE_DATA_ID}\",VALUE=\"{license}\"\n");
    match text.find('\n') {
        Some(i) => format!("{}{line}{}", &text[..=i], &text[i + 1..]),
        None => format!("{text}\n{line}"),
    }
}

/// A media playlist whose `identity` key URIs (`…/keys/{kid}`) become
/// `{license}/keys/{kid}`.
pub fn media_keys(text: &str, license: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        let identity = line.starts_with("#EXT-X-KEY:") && line.contains("KEYFORMAT=\"identity\"");
        let uri = identity
            .then(|| line.find("URI=\"").map(|i| i + 5))
            .flatten()
            .and_then(|from| line[from..].find('"').map(|len| (from, from + len)));
        match uri {
            Some((from, to)) => {
                let kid = line[from..to].rsplit('/').next().unwrap_or("");
                out.push_str(&format!("{}{license}/keys/{kid}{}", &line[..from], &line[to..]));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A DASH MPD whose Clear Key license URLs (`dashif:Laurl`) are `license`.
pub fn mpd_license(text: &str, license: &str) -> String {
    const OPEN: &str = "<dashif:Laurl>";
    const CLOSE: &str = "</dashif:Laurl>";
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(i) = rest.find(OPEN) {
        let from = i + OPEN.len();
        let Some(len) = rest[from..].find(CLOSE) else {
            break;
        };
        out.push_str(&rest[..from]);
        out.push_str(&xml_escape(license));
        rest = &rest[from + len..];
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_urls_become_the_sessions_and_keys_never_go_to_a_box() {
        let media_text = "#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;base64,AAA=\",KEYFORMAT=\"org.w3.clearkey\"\n\
             #EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI=\"http://packaged/v1/license/keys/00ff\",KEYFORMAT=\"identity\"\n\
             #EXT-X-MAP:URI=\"init.mp4\"\nseg-00001.m4s\n";
        let m = media_keys(
            &media(media_text, "http://box/c/t/360p", "token=T"),
            "http://fill/v1/license/s/S",
        );
        assert!(m.contains("URI=\"data:text/plain;base64,AAA=\""), "{m}");
        assert!(
            m.contains("URI=\"http://fill/v1/license/s/S/keys/00ff\",KEYFORMAT=\"identity\""),
            "{m}"
        );
        assert!(
            m.contains("#EXT-X-MAP:URI=\"http://box/c/t/360p/init.mp4?token=T\""),
            "{m}"
        );
        let d = mpd_license(
            "<A><dashif:Laurl>http://packaged/v1/license</dashif:Laurl></A><dashif:Laurl>x</dashif:Laurl>",
            "http://fill/s?a&b",
        );
        assert_eq!(d, "<A><dashif:Laurl>http://fill/s?a&amp;b</dashif:Laurl></A><dashif:Laurl>http://fill/s?a&amp;b</dashif:Laurl>");
        let h = master_license("#EXTM3U\n#EXT-X-VERSION:7\n", "http://fill/v1/license/s/S");
        assert_eq!(h, "#EXTM3U\n#EXT-X-SESSION-DATA:DATA-ID=\"com.nearcast.license\",VALUE=\"http://fill/v1/license/s/S\"\n#EXT-X-VERSION:7\n");
    }

    #[test]
    fn hls_uris_are_rewritten_and_tags_kept() {
        let m =
            "#EXTM3U\n#EXT-X-VERSION:7\n\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"audio-und/index.m3u8\"\n\n\
                 #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",LANGUAGE=\"en\",URI=\"text-en/index.m3u8\"\n\n\
                 #EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"audio\",SUBTITLES=\"subs\"\n360p/index.m3u8\n";
        let paths: Vec<Pathway> = ["b1", "origin"]
            .into_iter()
            .map(|id| Pathway {
                id,
                prefix: "/v1/play/t/".into(),
                query: format!("via={id}&token=T"),
            })
            .collect();
        let r = master(m, &paths, "/v1/play/t/steering.json");
        assert!(
            r.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/v1/play/t/steering.json\",PATHWAY-ID=\"b1\"\n\n"
            ),
            "{r}"
        );
        for p in ["b1", "origin"] {
            assert!(
                r.contains(&format!(
                    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio.{p}\",URI=\"/v1/play/t/audio-und/index.m3u8?via={p}&token=T\""
                )),
                "{r}"
            );
            assert!(
                r.contains(&format!(
                    "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs.{p}\",LANGUAGE=\"en\",URI=\"/v1/play/t/text-en/index.m3u8?via={p}&token=T\",PATHWAY-ID=\"{p}\""
                )),
                "{r}"
            );
            assert!(
                r.contains(&format!(
                    "#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"audio.{p}\",SUBTITLES=\"subs.{p}\",PATHWAY-ID=\"{p}\"\n/v1/play/t/360p/index.m3u8?via={p}&token=T\n"
                )),
                "{r}"
            );
        }
        assert_eq!(r.matches("#EXT-X-STREAM-INF").count(), 2);
        assert_eq!(r.matches("#EXT-X-VERSION").count(), 1);
        let p = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg-00001.m4s\n#EXT-X-ENDLIST\n";
        let r = media(p, "http://b1:8080/c/t/360p/", "token=T");
        assert!(
            r.contains("#EXT-X-MAP:URI=\"http://b1:8080/c/t/360p/init.mp4?token=T\""),
            "{r}"
        );
        assert!(r.contains("\nhttp://b1:8080/c/t/360p/seg-00001.m4s?token=T\n"), "{r}");
        assert!(r.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn mpd_gets_base_urls_and_tokens() {
        let m = "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\">\n  <Period>\n<SegmentTemplate initialization=\"v/init.mp4\" media=\"v/seg-$Number%05d$.m4s\"/>\n</Period></MPD>\n";
        let r = mpd(
            m,
            &["http://b1/c/t/".into(), "http://origin/c/t/".into()],
            "token=a-b&x=1",
        );
        assert!(
            r.contains(
                "type=\"static\">\n  <BaseURL>http://b1/c/t/</BaseURL>\n  <BaseURL>http://origin/c/t/</BaseURL>"
            ),
            "{r}"
        );
        assert!(r.contains("initialization=\"v/init.mp4?token=a-b&amp;x=1\""), "{r}");
        assert!(r.contains("media=\"v/seg-$Number%05d$.m4s?token=a-b&amp;x=1\""), "{r}");
    }
}
