//! Feeds arbitrary bytes to the packager as an operator's MP4 file: the
//! top-level box walk that finds `moov`, every track's header, codec
//! configuration and sample tables, then the CMAF init segment and the
//! segment plan built from what parsed. None of it may panic or allocate
//! past libFuzzer's limit; every sample it accepts must lie inside the
//! file, in decode order, and the plan must cover every sample once.
#![no_main]

use std::io::{Error, ErrorKind};

use libfuzzer_sys::fuzz_target;
use nearcast_packager::cmaf::{init_segment, plan::boundaries, plan_segments};
use nearcast_packager::mp4::{find_moov, tracks};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let read_at = |buf: &mut [u8], at: u64| {
        let src = usize::try_from(at)
            .ok()
            .and_then(|at| data.get(at..)?.get(..buf.len()))
            .ok_or_else(|| Error::from(ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    };
    let Ok(moov) = find_moov(read_at, len) else {
        return;
    };
    let Ok(tracks) = tracks(&moov, len) else {
        return;
    };
    for t in &tracks {
        let mut dts = 0;
        for s in &t.samples {
            assert!(s.offset + u64::from(s.size) <= len, "a sample past the end");
            assert!(s.dts >= dts, "decode times go back");
            dts = s.dts;
        }
        let _ = init_segment(t, None);
        let plan = plan_segments(t, 4.0, None);
        let mut next = 0;
        for r in &plan {
            assert_eq!(r.start, next, "the plan skips or repeats samples");
            next = r.end;
        }
        assert_eq!(next, t.samples.len(), "the plan covers every sample");
        let _ = plan_segments(t, 4.0, Some(&boundaries(t, &plan)));
    }
});
