//! Language tags for text and audio renditions: a BCP 47 tag as the manifests want
//! it (`en`, `pt-BR`, `zh-Hant`), checked against the ISO 639 languages we
//! know, with the ISO 639-2/T code an MP4 `mdhd` holds and an English name
//! for the players' menus. An unknown language is refused: a typo in a
//! tag would otherwise reach every viewer's menu.

/// (ISO 639-1, ISO 639-2/T, English name). Adding a language is a line.
const LANGUAGES: &[(&str, &str, &str)] = &[
    ("af", "afr", "Afrikaans"),
    ("am", "amh", "Amharic"),
    ("ar", "ara", "Arabic"),
    ("az", "aze", "Azerbaijani"),
    ("be", "bel", "Belarusian"),
    ("bg", "bul", "Bulgarian"),
    ("bn", "ben", "Bengali"),
    ("bs", "bos", "Bosnian"),
    ("ca", "cat", "Catalan"),
    ("cs", "ces", "Czech"),
    ("cy", "cym", "Welsh"),
    ("da", "dan", "Danish"),
    ("de", "deu", "German"),
    ("el", "ell", "Greek"),
    ("en", "eng", "English"),
    ("eo", "epo", "Esperanto"),
    ("es", "spa", "Spanish"),
    ("et", "est", "Estonian"),
    ("eu", "eus", "Basque"),
    ("fa", "fas", "Persian"),
    ("fi", "fin", "Finnish"),
    ("fil", "fil", "Filipino"),
    ("fo", "fao", "Faroese"),
    ("fr", "fra", "French"),
    ("ga", "gle", "Irish"),
    ("gl", "glg", "Galician"),
    ("gu", "guj", "Gujarati"),
    ("ha", "hau", "Hausa"),
    ("he", "heb", "Hebrew"),
    ("hi", "hin", "Hindi"),
    ("hr", "hrv", "Croatian"),
    ("hu", "hun", "Hungarian"),
    ("hy", "hye", "Armenian"),
    ("id", "ind", "Indonesian"),
    ("ig", "ibo", "Igbo"),
    ("is", "isl", "Icelandic"),
    ("it", "ita", "Italian"),
    ("ja", "jpn", "Japanese"),
    ("jv", "jav", "Javanese"),
    ("ka", "kat", "Georgian"),
    ("kk", "kaz", "Kazakh"),
    ("km", "khm", "Khmer"),
    ("kn", "kan", "Kannada"),
    ("ko", "kor", "Korean"),
    ("ku", "kur", "Kurdish"),
    ("ky", "kir", "Kyrgyz"),
    ("la", "lat", "Latin"),
    ("lb", "ltz", "Luxembourgish"),
    ("lo", "lao", "Lao"),
    ("lt", "lit", "Lithuanian"),
    ("lv", "lav", "Latvian"),
    ("mi", "mri", "Maori"),
    ("mk", "mkd", "Macedonian"),
    ("ml", "mal", "Malayalam"),
    ("mn", "mon", "Mongolian"),
    ("mr", "mar", "Marathi"),
    ("ms", "msa", "Malay"),
    ("mt", "mlt", "Maltese"),
    ("my", "mya", "Burmese"),
    ("nb", "nob", "Norwegian Bokmål"),
    ("ne", "nep", "Nepali"),
    ("nl", "nld", "Dutch"),
    ("nn", "nno", "Norwegian Nynorsk"),
    ("no", "nor", "Norwegian"),
    ("pa", "pan", "Punjabi"),
    ("pl", "pol", "Polish"),
    ("ps", "pus", "Pashto"),
    ("pt", "por", "Portuguese"),
    ("ro", "ron", "Romanian"),
    ("ru", "rus", "Russian"),
    ("rw", "kin", "Kinyarwanda"),
    ("si", "sin", "Sinhala"),
    ("sk", "slk", "Slovak"),
    ("sl", "slv", "Slovenian"),
    ("so", "som", "Somali"),
    ("sq", "sqi", "Albanian"),
    ("sr", "srp", "Serbian"),
    ("sv", "swe", "Swedish"),
    ("sw", "swa", "Swahili"),
    ("ta", "tam", "Tamil"),
    ("te", "tel", "Telugu"),
    ("tg", "tgk", "Tajik"),
    ("th", "tha", "Thai"),
    ("tk", "tuk", "Turkmen"),
    ("tl", "tgl", "Tagalog"),
    ("tr", "tur", "Turkish"),
    ("uk", "ukr", "Ukrainian"),
    ("ur", "urd", "Urdu"),
    ("uz", "uzb", "Uzbek"),
    ("vi", "vie", "Vietnamese"),
    ("xh", "xho", "Xhosa"),
    ("yi", "yid", "Yiddish"),
    ("yo", "yor", "Yoruba"),
    ("yue", "yue", "Cantonese"),
    ("zh", "zho", "Chinese"),
    ("zu", "zul", "Zulu"),
];

/// ISO 639-2/B codes (what some muxers write in `mdhd`) and their /T twins.
const BIBLIOGRAPHIC: &[(&str, &str)] = &[
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "zho"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("mao", "mri"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("wel", "cym"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LanguageError {
    #[error("unknown language '{0}' (want an ISO 639 code such as en, fr, pt-BR, zh-Hant)")]
    Unknown(String),
    #[error("'{tag}': subtag '{subtag}' is neither a region (BR, 419) nor a script (Hant)")]
    BadSubtag { tag: String, subtag: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Language {
    /// The BCP 47 tag (HLS `LANGUAGE`, DASH `lang`), normalised: `pt-BR`.
    pub tag: String,
    /// ISO 639-2/T, for the MP4 `mdhd`.
    pub iso639_2: &'static str,
    /// English name, with a region or script appended: `Portuguese (BR)`.
    pub name: String,
}

/// Checks and normalises `tag` (`EN`, `eng`, `pt-br`, `zh-hant` are
/// accepted): a known primary language, then at most a script (four
/// letters) and a region (two letters or three digits).
pub fn parse(tag: &str) -> Result<Language, LanguageError> {
    let mut parts = tag.split(['-', '_']);
    let mut primary = parts.next().unwrap_or("").to_ascii_lowercase();
    if let Some((_, t)) = BIBLIOGRAPHIC.iter().find(|(b, _)| *b == primary) {
        primary = t.to_string();
    }
    let &(code, iso639_2, english) = LANGUAGES
        .iter()
        .find(|(one, two, _)| *one == primary || *two == primary)
        .ok_or_else(|| LanguageError::Unknown(tag.to_string()))?;
    let mut out = code.to_string();
    let mut extra: Vec<String> = Vec::new();
    let (mut script, mut region) = (false, false);
    for sub in parts {
        let bad = || LanguageError::BadSubtag {
            tag: tag.to_string(),
            subtag: sub.to_string(),
        };
        let letters = sub.bytes().all(|b| b.is_ascii_alphabetic());
        let normal = match sub.len() {
            4 if letters && !script && !region => {
                script = true;
                let mut s = sub.to_ascii_lowercase();
                s[..1].make_ascii_uppercase();
                s
            }
            2 if letters && !region => sub.to_ascii_uppercase(),
            3 if sub.bytes().all(|b| b.is_ascii_digit()) && !region => sub.to_string(),
            _ => return Err(bad()),
        };
        region |= normal.len() != 4;
        out.push('-');
        out.push_str(&normal);
        extra.push(normal);
    }
    let name = if extra.is_empty() {
        english.to_string()
    } else {
        format!("{english} ({})", extra.join(", "))
    };
    Ok(Language {
        tag: out,
        iso639_2,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tags_are_normalised() {
        let pt = parse("pt-br").unwrap();
        assert_eq!(
            (pt.tag.as_str(), pt.iso639_2, pt.name.as_str()),
            ("pt-BR", "por", "Portuguese (BR)")
        );
        assert_eq!(parse("eng").unwrap().tag, "en");
        assert_eq!(parse("ger").unwrap().iso639_2, "deu");
        assert_eq!(parse("zh-hant-TW").unwrap().tag, "zh-Hant-TW");
        assert_eq!(parse("es-419").unwrap().name, "Spanish (419)");
    }

    #[test]
    fn unknown_and_malformed_tags_are_refused() {
        assert_eq!(parse("xx"), Err(LanguageError::Unknown("xx".into())));
        assert_eq!(parse(""), Err(LanguageError::Unknown("".into())));
        assert!(matches!(parse("en-toolong"), Err(LanguageError::BadSubtag { .. })));
        assert!(matches!(parse("en-US-GB"), Err(LanguageError::BadSubtag { .. })));
        assert!(matches!(parse("en-US-Latn"), Err(LanguageError::BadSubtag { .. })));
    }
}
