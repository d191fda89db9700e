//! The rollout engine on a simulated fleet: waves advance, a bad release
//! halts the rollout before the next wave, abort and rollback.

use std::collections::BTreeMap;

use super::engine::{abort, plan, states, step, BoxState, Observed};
use super::{Members, Progress, Spec, SpecError, State, WaveSpec};

fn fleet(n: usize) -> BTreeMap<String, Option<String>> {
    (0..n)
        .map(|i| {
            (
                format!("box-{i}"),
                Some(if i % 2 == 0 { "east" } else { "west" }.to_string()),
            )
        })
        .collect()
}

fn spec(waves: Vec<Members>, soak: f64) -> Spec {
    Spec {
        release: nearcast_common::Name::new("r2").unwrap(),
        waves: waves
            .into_iter()
            .map(|boxes| WaveSpec {
                boxes,
                soak_minutes: soak,
            })
            .collect(),
        max_failure_ratio: 0.0,
        emergency: false,
        silent_minutes: 10.0,
    }
}

fn start(s: &Spec, f: &BTreeMap<String, Option<String>>) -> Progress {
    Progress {
        state: State::Running,
        reason: None,
        waves: plan(s, f).unwrap(),
        rollback: None,
        created: 0,
    }
}

/// Boxes as they report: `on` is what each runs; heard at `at`.
fn seen(on: &BTreeMap<String, Observed>) -> impl Fn(&str) -> Observed + '_ {
    move |id| on.get(id).cloned().unwrap_or_default()
}

fn running(release: &str, at: u64) -> Observed {
    Observed {
        release: Some(release.into()),
        last_heartbeat: Some(at),
        ..Observed::default()
    }
}

#[test]
fn plans_are_deterministic_and_disjoint() {
    let f = fleet(10);
    let s = spec(
        vec![
            Members::Ids(vec!["box-3".into()]),
            Members::Percent(20.0),
            Members::Sites(vec!["west".into()]),
            Members::Percent(100.0),
        ],
        0.0,
    );
    let a = plan(&s, &f).unwrap();
    assert_eq!(a, plan(&s, &f).unwrap());
    assert_eq!(a[0].boxes, ["box-3"]);
    assert_eq!(a[1].boxes.len(), 2);
    assert!(a[2].boxes.iter().all(|b| f[b].as_deref() == Some("west")));
    let mut all: Vec<&String> = a.iter().flat_map(|w| &w.boxes).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10);
    // Another release orders the fleet differently.
    let mut other = s.clone();
    other.release = nearcast_common::Name::new("r3").unwrap();
    let b = plan(&other, &f).unwrap();
    assert_ne!(a[1].boxes, b[1].boxes);
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let f = fleet(4);
    let cases = [
        (spec(vec![], 0.0), SpecError::NoWaves),
        (spec(vec![Members::Percent(0.0)], 0.0), SpecError::Percent(1)),
        (spec(vec![Members::Percent(50.0)], -1.0), SpecError::Soak(1)),
        (
            spec(vec![Members::Sites(vec!["north".into()])], 0.0),
            SpecError::UnknownSite {
                wave: 1,
                site: "north".into(),
            },
        ),
        (
            spec(vec![Members::Ids(vec!["box-9".into()])], 0.0),
            SpecError::UnknownBox {
                wave: 1,
                id: "box-9".into(),
            },
        ),
        (
            spec(
                vec![Members::Ids(vec!["box-1".into()]), Members::Ids(vec!["box-1".into()])],
                0.0,
            ),
            SpecError::Twice {
                id: "box-1".into(),
                first: 1,
                second: 2,
            },
        ),
        (
            spec(vec![Members::Percent(100.0), Members::Percent(10.0)], 0.0),
            SpecError::Empty(2),
        ),
    ];
    for (s, want) in cases {
        assert_eq!(plan(&s, &f), Err(want));
    }
    let mut s = spec(vec![Members::Percent(50.0)], 0.0);
    s.max_failure_ratio = 1.5;
    assert_eq!(plan(&s, &f), Err(SpecError::Ratio));
}

#[test]
fn waves_advance_after_their_soak() {
    let f = fleet(6);
    let s = spec(
        vec![Members::Percent(16.0), Members::Percent(33.0), Members::Percent(100.0)],
        5.0,
    );
    let mut p = start(&s, &f);
    let mut on: BTreeMap<String, Observed> = f.keys().map(|b| (b.clone(), running("r1", 0))).collect();
    let t = step(&s, &mut p, &seen(&on), 100);
    assert_eq!(t, vec![(p.waves[0].boxes[0].clone(), "r2".to_string())]);
    // Nothing more while the box is pending.
    assert!(step(&s, &mut p, &seen(&on), 160).is_empty());
    assert_eq!(p.waves[0].completed, None);
    let first = p.waves[0].boxes[0].clone();
    // On the release in a trial boot: not updated until it commits.
    on.insert(
        first.clone(),
        Observed {
            update: "trial r2".into(),
            ..running("r2", 150)
        },
    );
    assert!(step(&s, &mut p, &seen(&on), 150).is_empty());
    assert_eq!(p.waves[0].completed, None);
    on.insert(first.clone(), running("r2", 200));
    assert!(step(&s, &mut p, &seen(&on), 200).is_empty());
    assert_eq!(p.waves[0].completed, Some(200));
    // Soaks 5 minutes, then wave 2 starts.
    assert!(step(&s, &mut p, &seen(&on), 499).is_empty());
    let t = step(&s, &mut p, &seen(&on), 500);
    assert_eq!(t.len(), 2);
    for id in p.waves[1].boxes.clone().into_iter().chain(p.waves[2].boxes.clone()) {
        on.insert(id, running("r2", 600));
    }
    step(&s, &mut p, &seen(&on), 600);
    assert!(step(&s, &mut p, &seen(&on), 900).len() == 3);
    step(&s, &mut p, &seen(&on), 900);
    step(&s, &mut p, &seen(&on), 1200);
    assert_eq!(p.state, State::Done);
}

#[test]
fn a_bad_release_halts_before_the_next_wave() {
    let f = fleet(6);
    let mut s = spec(vec![Members::Percent(34.0), Members::Percent(100.0)], 1.0);
    s.max_failure_ratio = 0.4;
    let mut p = start(&s, &f);
    let mut on: BTreeMap<String, Observed> = f.keys().map(|b| (b.clone(), running("r1", 0))).collect();
    step(&s, &mut p, &seen(&on), 10);
    let w1 = p.waves[0].boxes.clone();
    assert_eq!(w1.len(), 3);
    // One of three rolled back: 0.33, under 0.4.
    on.insert(
        w1[0].clone(),
        Observed {
            update: "failed r2: the appliance did not start".into(),
            failed: vec!["r2".into()],
            ..running("r1", 20)
        },
    );
    assert!(step(&s, &mut p, &seen(&on), 20).is_empty());
    assert_eq!(p.state, State::Running);
    // A second one goes silent for more than 10 minutes: 0.67.
    on.insert(w1[1].clone(), running("r1", 30));
    on.insert(w1[2].clone(), running("r2", 700));
    assert!(step(&s, &mut p, &seen(&on), 700).is_empty());
    assert_eq!(p.state, State::Halted);
    let why = p.reason.clone().unwrap();
    // A box never heard from is said so.
    let never = super::engine::classify(&Observed::default(), "r2", 0, 600, 700);
    assert_eq!(never, BoxState::Failed("never sent a heartbeat".into()));
    assert!(why.starts_with("wave 1: 2 of 3 boxes failed (0.67 > 0.4): "), "{why}");
    assert!(
        why.contains("the appliance did not start") && why.contains("no heartbeat for 670 s"),
        "{why}"
    );
    // Halted stays halted; wave 2 never started.
    on.insert(w1[1].clone(), running("r2", 800));
    assert!(step(&s, &mut p, &seen(&on), 800).is_empty());
    assert_eq!((p.state, p.waves[1].started), (State::Halted, None));
    let st = states(&s, &p, &seen(&on), 800);
    assert!(st[1].iter().all(|b| *b == BoxState::Waiting));
}

#[test]
fn abort_keeps_the_rest_and_can_roll_back() {
    let f = fleet(4);
    let s = spec(vec![Members::Percent(50.0), Members::Percent(100.0)], 0.0);
    let mut p = start(&s, &f);
    let mut on: BTreeMap<String, Observed> = f.keys().map(|b| (b.clone(), running("r1", 0))).collect();
    step(&s, &mut p, &seen(&on), 10);
    let w1 = p.waves[0].boxes.clone();
    on.insert(w1[0].clone(), running("r2", 20));
    let t = abort(&s, &mut p, Some("r0"), &seen(&on), 30);
    // The updated box goes to the rollback release, the pending one back
    // to what it runs; wave 2 is untouched.
    assert_eq!(t, vec![(w1[0].clone(), "r0".into()), (w1[1].clone(), "r1".into())]);
    assert_eq!(p.state, State::Aborted);
    assert!(step(&s, &mut p, &seen(&on), 40).is_empty());
}
