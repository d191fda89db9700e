//! Rights: when and where each title may be watched.
//!
//! A title's `Rights` are availability windows (UTC unix seconds; none
//! means always) and territories (ISO 3166-1 alpha-2 codes, an allow or a
//! deny list; none means everywhere). A viewer's country comes from the
//! operator's IP-to-country table (`network,country` lines, the shape of
//! common GeoIP exports); an address the table does not know follows
//! `[rights] unknown_country` (`allow`, `deny`, or a code to assume).
//!
//! Enforced in steering and playback (451 with the reason) and in the
//! license service; the planner puts a title on an ISP's boxes only while
//! it is available in the ISP's country (the one most of its prefixes are
//! in) and drops it when its window closes. The `RightsView` is swapped
//! whole, like the steering view.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use nearcast_common::{IpPrefix, PrefixTable};
use serde::{Deserialize, Serialize};

/// A country code: two upper-case ASCII letters.
pub type Country = [u8; 2];

/// When a title is available: `from` ≤ now < `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: u64,
    pub until: u64,
}

/// Where a title is available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Territories {
    Allow(Vec<String>),
    Deny(Vec<String>),
}

/// A title's rights, as the operator sets them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    #[serde(default)]
    pub windows: Vec<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territories: Option<Territories>,
}

/// Why a title may not be watched (the 451's JSON reason).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unavailable {
    /// Before its next window opens (`None`: no window is left).
    OutsideWindow { next_from: Option<u64> },
    /// Not in this country (`None`: the address's country is unknown).
    Territory { country: Option<String> },
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::OutsideWindow { next_from: Some(t) } => write!(f, "not available until {t} (unix seconds)"),
            Unavailable::OutsideWindow { next_from: None } => write!(f, "no longer available"),
            Unavailable::Territory { country: Some(c) } => write!(f, "not available in {c}"),
            Unavailable::Territory { country: None } => {
                write!(f, "not available where the client's country is unknown")
            }
        }
    }
}

/// Whether `s` is a plausible ISO 3166-1 alpha-2 code.
pub fn country(s: &str) -> Option<Country> {
    let b = s.as_bytes();
    (b.len() == 2 && b.iter().all(u8::is_ascii_uppercase)).then(|| [b[0], b[1]])
}

fn name(c: Country) -> String {
    String::from_utf8_lossy(&c).into_owned()
}

impl Rights {
    /// A clear reason if the rights cannot be right (bad codes, a window
    /// that ends before it starts).
    pub fn check(&self) -> Result<(), String> {
        for w in &self.windows {
            if w.from >= w.until {
                return Err(format!("window from {} until {} is empty", w.from, w.until));
            }
        }
        let codes = match &self.territories {
            Some(Territories::Allow(c) | Territories::Deny(c)) => c.as_slice(),
            None => &[],
        };
        match codes.iter().find(|c| country(c).is_none()) {
            Some(bad) => Err(format!(
                "'{bad}' is not an ISO 3166-1 alpha-2 code (two upper-case letters)"
            )),
            None => Ok(()),
        }
    }

    /// Whether the title is in a window at `now`, else when the next opens.
    pub fn in_window(&self, now: u64) -> Result<(), Unavailable> {
        if self.windows.is_empty() || self.windows.iter().any(|w| w.from <= now && now < w.until) {
            return Ok(());
        }
        let next_from = self.windows.iter().filter(|w| w.from > now).map(|w| w.from).min();
        Err(Unavailable::OutsideWindow { next_from })
    }

    /// Whether the title may be watched in `country` (None: unknown, and
    /// `unknown` says what that means).
    pub fn in_territory(&self, country: Option<Country>, unknown: Unknown) -> Result<(), Unavailable> {
        let Some(t) = &self.territories else {
            return Ok(());
        };
        let country = match (country, unknown) {
            (Some(c), _) | (None, Unknown::Assume(c)) => c,
            (None, Unknown::Allow) => return Ok(()),
            (None, Unknown::Deny) => return Err(Unavailable::Territory { country: None }),
        };
        let listed = |list: &[String]| list.iter().any(|c| c.as_bytes() == country);
        let ok = match t {
            Territories::Allow(list) => listed(list),
            Territories::Deny(list) => !listed(list),
        };
        ok.then_some(()).ok_or(Unavailable::Territory {
            country: Some(name(country)),
        })
    }
}

/// What an address the country table does not know is taken to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    Allow,
    Deny,
    Assume(Country),
}

impl std::str::FromStr for Unknown {
    type Err = String;
    fn from_str(s: &str) -> Result<Unknown, String> {
        match s {
            "allow" => Ok(Unknown::Allow),
            "deny" => Ok(Unknown::Deny),
            code => country(code)
                .map(Unknown::Assume)
                .ok_or_else(|| format!("unknown_country '{code}': allow, deny or a country code")),
        }
    }
}

/// Parses `network,country` lines (a `network,…` header and `#` comments
/// skipped, further columns ignored); the first bad line is an error
/// naming it.
pub fn parse_countries(text: &str) -> Result<Vec<(IpPrefix, Country)>, (usize, String)> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("network")) {
            continue;
        }
        let mut cols = line.split(',').map(str::trim);
        let (Some(net), Some(code)) = (cols.next(), cols.next()) else {
            return Err((i + 1, "expected 'network,country'".into()));
        };
        let net: IpPrefix = net
            .parse()
            .map_err(|e: nearcast_common::PrefixError| (i + 1, e.to_string()))?;
        let code = country(code).ok_or_else(|| (i + 1, format!("'{code}' is not a country code")))?;
        rows.push((net, code));
    }
    Ok(rows)
}

/// Rights as steering, playback, licenses and the planner read them.
pub struct RightsView {
    pub titles: HashMap<String, Rights>,
    pub countries: Arc<PrefixTable<Country>>,
    /// ISP → the country most of its prefixes are in.
    pub isp_country: Arc<HashMap<String, Country>>,
    pub unknown: Unknown,
    /// Bumped by every rebuild (fill plans made before it are stale).
    pub version: u64,
}

impl RightsView {
    pub fn empty(unknown: Unknown) -> RightsView {
        RightsView {
            titles: HashMap::new(),
            countries: Arc::new(PrefixTable::new()),
            isp_country: Arc::new(HashMap::new()),
            unknown,
            version: 0,
        }
    }

    /// Whether a viewer at `client` may watch `title` at `now`.
    pub fn viewer(&self, title: &str, client: IpAddr, now: u64) -> Result<(), Unavailable> {
        let Some(r) = self.titles.get(title) else {
            return Ok(());
        };
        r.in_window(now)?;
        r.in_territory(self.countries.lookup(client).map(|(_, c)| *c), self.unknown)
    }

    /// Whether `title` may be on the boxes of `isp` at `now`.
    pub fn for_isp(&self, title: &str, isp: &str, now: u64) -> bool {
        let Some(r) = self.titles.get(title) else {
            return true;
        };
        r.in_window(now).is_ok() && r.in_territory(self.isp_country.get(isp).copied(), self.unknown).is_ok()
    }

    /// How many window edges have passed by `now`: a fill plan made
    /// before a window opened or closed is stale.
    pub fn edges_passed(&self, now: u64) -> usize {
        self.titles
            .values()
            .flat_map(|r| &r.windows)
            .map(|w| usize::from(w.from <= now) + usize::from(w.until <= now))
            .sum()
    }
}

/// The rights view from the store: titles' rights, the country table,
/// and each ISP's country from its prefixes.
pub fn build(
    store: &dyn crate::store::Store,
    unknown: Unknown,
    version: u64,
) -> Result<RightsView, crate::store::StoreError> {
    let mut countries = PrefixTable::new();
    for (p, c) in store.countries()? {
        if let (Ok(p), Some(c)) = (p.parse::<IpPrefix>(), country(&c)) {
            countries.insert(p, c);
        }
    }
    let routing = store.routing()?;
    let prefixes = routing.prefixes.iter().filter_map(|(p, asn)| {
        let isp = routing.asn_isp.get(asn)?;
        Some((p.parse::<IpPrefix>().ok()?, isp.as_str()))
    });
    let isp_country = isp_countries(prefixes, &countries);
    Ok(RightsView {
        titles: store.rights()?.into_iter().collect(),
        countries: Arc::new(countries),
        isp_country: Arc::new(isp_country),
        unknown,
        version,
    })
}

/// ISP → the country most of its prefixes (`prefixes` as (prefix, ISP))
/// are in, by the table.
pub fn isp_countries<'a>(
    prefixes: impl Iterator<Item = (IpPrefix, &'a str)>,
    table: &PrefixTable<Country>,
) -> HashMap<String, Country> {
    let mut votes: HashMap<&str, HashMap<Country, usize>> = HashMap::new();
    for (p, isp) in prefixes {
        if let Some((_, c)) = table.lookup(p.addr()) {
            *votes.entry(isp).or_default().entry(*c).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .filter_map(|(isp, v)| {
            let best = v.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
            Some((isp.to_string(), best.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rights(json: &str) -> Rights {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn windows_and_territories_decide_and_say_why() {
        let r = rights(
            r#"{"windows":[{"from":100,"until":200},{"from":300,"until":400}],"territories":{"allow":["DE","AT"]}}"#,
        );
        assert!(r.check().is_ok());
        assert_eq!(r.in_window(150), Ok(()));
        assert_eq!(
            r.in_window(250),
            Err(Unavailable::OutsideWindow { next_from: Some(300) })
        );
        assert_eq!(r.in_window(400), Err(Unavailable::OutsideWindow { next_from: None }));
        assert_eq!(r.in_territory(country("AT"), Unknown::Deny), Ok(()));
        assert_eq!(
            r.in_territory(country("FR"), Unknown::Allow),
            Err(Unavailable::Territory {
                country: Some("FR".into())
            })
        );
        assert_eq!(r.in_territory(None, Unknown::Allow), Ok(()));
        assert_eq!(
            r.in_territory(None, Unknown::Deny),
            Err(Unavailable::Territory { country: None })
        );
        assert_eq!(r.in_territory(None, Unknown::Assume(*b"DE")), Ok(()));
        let deny = rights(r#"{"territories":{"deny":["US"]}}"#);
        assert!(deny.in_territory(country("US"), Unknown::Allow).is_err());
        assert!(deny.in_territory(country("CA"), Unknown::Allow).is_ok());
        assert!(deny.in_window(0).is_ok(), "no window: always");
        assert!(rights(r#"{"windows":[{"from":5,"until":5}]}"#).check().is_err());
        assert!(rights(r#"{"territories":{"allow":["de"]}}"#).check().is_err());
        assert!(
            serde_json::from_str::<Rights>(r#"{"window":[]}"#).is_err(),
            "a misspelt field is refused"
        );
        assert_eq!("deny".parse(), Ok(Unknown::Deny));
        assert!("Germany".parse::<Unknown>().is_err());
    }

    #[test]
    fn the_country_table_parses_like_a_geoip_export_and_names_bad_lines() {
        let rows = parse_countries("network,country\n10.0.0.0/8,DE\n# comment\n2001:db8::/32,AT,extra\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(parse_countries("10.0.0.0/8\n").unwrap_err().0, 1);
        assert_eq!(parse_countries("10.0.0.0/8,DE\n10.0.0.0/33,DE\n").unwrap_err().0, 2);
        assert_eq!(parse_countries("10.0.0.0/8,Deutschland\n").unwrap_err().0, 1);
        let mut table = PrefixTable::new();
        for (p, c) in rows {
            table.insert(p, c);
        }
        let prefixes = ["10.1.0.0/16", "10.2.0.0/16", "192.0.2.0/24"].map(|p| p.parse::<IpPrefix>().unwrap());
        let isps = isp_countries(prefixes.iter().map(|p| (*p, "isp-a")), &table);
        assert_eq!(isps.get("isp-a"), Some(b"DE"));
    }
}
