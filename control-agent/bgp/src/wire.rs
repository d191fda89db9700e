//! BGP message framing and the small messages: OPEN (with capabilities),
//! KEEPALIVE, NOTIFICATION. Every malformation is a `BgpError` carrying
//! the NOTIFICATION (code, subcode, data) RFC 4271 §6 prescribes.

use std::net::Ipv4Addr;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended-message capability.
pub const MAX_LEN: usize = 4096;
/// The 2-octet stand-in for a 4-octet AS (RFC 6793).
pub const AS_TRANS: u16 = 23456;

pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

/// A NOTIFICATION to send (or one received), with why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {code}/{subcode})")]
pub struct BgpError {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
    pub reason: String,
}

impl BgpError {
    pub fn new(code: u8, subcode: u8, data: &[u8], reason: impl Into<String>) -> BgpError {
        BgpError {
            code,
            subcode,
            data: data.to_vec(),
            reason: reason.into(),
        }
    }

    /// Message Header Error (1).
    pub fn header(subcode: u8, data: &[u8], reason: impl Into<String>) -> BgpError {
        BgpError::new(1, subcode, data, reason)
    }

    /// OPEN Message Error (2).
    pub fn open(subcode: u8, reason: impl Into<String>) -> BgpError {
        BgpError::new(2, subcode, &[], reason)
    }

    /// UPDATE Message Error (3).
    pub fn update(subcode: u8, data: &[u8], reason: impl Into<String>) -> BgpError {
        BgpError::new(3, subcode, data, reason)
    }

    /// The NOTIFICATION message for this error.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![self.code, self.subcode];
        body.extend_from_slice(&self.data);
        frame(NOTIFICATION, &body)
    }
}

/// A whole message: header, then `body`.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&MARKER);
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

pub fn keepalive() -> Vec<u8> {
    frame(KEEPALIVE, &[])
}

/// One whole message found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed<'a> {
    pub kind: u8,
    pub body: &'a [u8],
    /// Bytes it takes in the buffer, header included.
    pub len: usize,
}

/// The first complete message in `buf`; `Ok(None)` if more bytes are
/// needed.
pub fn split(buf: &[u8]) -> Result<Option<Framed<'_>>, BgpError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        return Err(BgpError::header(1, &[], "connection not synchronized (bad marker)"));
    }
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    let kind = buf[18];
    let bad_len = || BgpError::header(2, &buf[16..18], format!("bad message length {len}"));
    let min = match kind {
        OPEN => HEADER_LEN + 10,
        UPDATE => HEADER_LEN + 4,
        NOTIFICATION => HEADER_LEN + 2,
        KEEPALIVE => HEADER_LEN,
        ROUTE_REFRESH => HEADER_LEN + 4,
        other => return Err(BgpError::header(3, &[other], format!("bad message type {other}"))),
    };
    if !(min..=MAX_LEN).contains(&len) || (kind == KEEPALIVE && len != HEADER_LEN) {
        return Err(bad_len());
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Framed {
        kind,
        body: &buf[HEADER_LEN..len],
        len,
    }))
}

/// An OPEN's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The speaker's AS: from the 4-octet AS capability when present.
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    /// (AFI, SAFI) pairs of the multiprotocol capability.
    pub families: Vec<(u16, u8)>,
    pub four_octet_as: bool,
}

impl Open {
    pub fn encode(&self) -> Vec<u8> {
        let mut caps = Vec::new();
        for &(afi, safi) in &self.families {
            caps.extend_from_slice(&[1, 4]);
            caps.extend_from_slice(&afi.to_be_bytes());
            caps.extend_from_slice(&[0, safi]);
        }
        if self.four_octet_as {
            caps.extend_from_slice(&[65, 4]);
            caps.extend_from_slice(&self.asn.to_be_bytes());
        }
        let short_as = u16::try_from(self.asn).unwrap_or(AS_TRANS);
        let mut body = vec![4];
        body.extend_from_slice(&short_as.to_be_bytes());
        body.extend_from_slice(&self.hold_time.to_be_bytes());
        body.extend_from_slice(&self.router_id.octets());
        body.push((caps.len() + 2) as u8);
        body.extend_from_slice(&[2, caps.len() as u8]);
        body.extend_from_slice(&caps);
        frame(OPEN, &body)
    }

    pub fn parse(body: &[u8]) -> Result<Open, BgpError> {
        if body.len() < 10 {
            return Err(BgpError::header(2, &[], "OPEN too short"));
        }
        if body[0] != 4 {
            return Err(BgpError::new(2, 1, &[0, 4], format!("unsupported version {}", body[0])));
        }
        let short_as = u16::from_be_bytes([body[1], body[2]]);
        let hold_time = u16::from_be_bytes([body[3], body[4]]);
        if hold_time == 1 || hold_time == 2 {
            return Err(BgpError::open(6, format!("unacceptable hold time {hold_time}")));
        }
        let router_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
        if router_id.is_unspecified() {
            return Err(BgpError::open(3, "BGP identifier 0.0.0.0"));
        }
        let opt_len = usize::from(body[9]);
        let params = body
            .get(10..10 + opt_len)
            .filter(|_| 10 + opt_len == body.len())
            .ok_or_else(|| BgpError::header(2, &[], "OPEN optional parameters overrun"))?;
        let mut open = Open {
            asn: u32::from(short_as),
            hold_time,
            router_id,
            families: Vec::new(),
            four_octet_as: false,
        };
        let mut p = params;
        while !p.is_empty() {
            let (kind, len) = match p {
                [k, l, ..] => (*k, usize::from(*l)),
                _ => return Err(BgpError::open(0, "truncated optional parameter")),
            };
            let value = p
                .get(2..2 + len)
                .ok_or_else(|| BgpError::open(0, "optional parameter overrun"))?;
            if kind != 2 {
                return Err(BgpError::open(4, format!("unsupported optional parameter {kind}")));
            }
            parse_capabilities(value, &mut open)?;
            p = &p[2 + len..];
        }
        if open.four_octet_as && short_as != AS_TRANS && u32::from(short_as) != open.asn {
            return Err(BgpError::open(2, "AS field disagrees with the 4-octet AS capability"));
        }
        Ok(open)
    }
}

fn parse_capabilities(mut c: &[u8], open: &mut Open) -> Result<(), BgpError> {
    while !c.is_empty() {
        let (code, len) = match c {
            [k, l, ..] => (*k, usize::from(*l)),
            _ => return Err(BgpError::open(0, "truncated capability")),
        };
        let v = c
            .get(2..2 + len)
            .ok_or_else(|| BgpError::open(0, "capability overrun"))?;
        match (code, v) {
            (1, [a, b, _, safi]) => open.families.push((u16::from_be_bytes([*a, *b]), *safi)),
            (65, [a, b, c2, d]) => {
                open.four_octet_as = true;
                open.asn = u32::from_be_bytes([*a, *b, *c2, *d]);
            }
            (1 | 65, _) => return Err(BgpError::open(0, format!("capability {code} has length {len}"))),
            _ => {} // others (route refresh, graceful restart, …) are not used
        }
        c = &c[2 + len..];
    }
    Ok(())
}

/// A received NOTIFICATION, described.
pub fn describe_notification(body: &[u8]) -> String {
    match body {
        [code, sub, ..] => format!("NOTIFICATION {code}/{sub}"),
        _ => "malformed NOTIFICATION".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Open {
        Open {
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            families: vec![(AFI_IPV4, SAFI_UNICAST), (AFI_IPV6, SAFI_UNICAST)],
            four_octet_as: true,
        }
    }

    #[test]
    fn open_round_trips_with_as_trans() {
        let m = open().encode();
        let f = split(&m).unwrap().unwrap();
        assert_eq!((f.kind, f.len), (OPEN, m.len()));
        assert_eq!(u16::from_be_bytes([f.body[1], f.body[2]]), AS_TRANS);
        assert_eq!(Open::parse(f.body).unwrap(), open());
    }

    #[test]
    fn framing_errors_carry_their_notification() {
        assert_eq!(split(&keepalive()[..10]).unwrap(), None, "partial");
        let mut bad = keepalive();
        bad[0] = 0;
        assert_eq!(split(&bad).unwrap_err().code, 1);
        let mut long = keepalive();
        long[17] = 20;
        assert_eq!(
            (split(&long).unwrap_err().code, split(&long).unwrap_err().subcode),
            (1, 2)
        );
        let mut kind = keepalive();
        kind[18] = 9;
        assert_eq!(split(&kind).unwrap_err().subcode, 3);
        assert_eq!(split(&kind).unwrap_err().data, vec![9]);
    }

    #[test]
    fn open_errors() {
        let m = open().encode();
        let body = &m[HEADER_LEN..];
        let mut v3 = body.to_vec();
        v3[0] = 3;
        assert_eq!(Open::parse(&v3).unwrap_err().subcode, 1);
        let mut hold = body.to_vec();
        hold[3..5].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(Open::parse(&hold).unwrap_err().subcode, 6);
        let mut id = body.to_vec();
        id[5..9].copy_from_slice(&[0; 4]);
        assert_eq!(Open::parse(&id).unwrap_err().subcode, 3);
        assert!(Open::parse(&body[..body.len() - 3]).is_err(), "truncated");
        let err = BgpError::open(6, "x").encode();
        assert_eq!(&err[HEADER_LEN..], &[2, 6]);
    }
}
