//! Eviction: a title that falls out of the box's manifest leaves the
//! inventory (the fill server hears first) and then the disk.

use std::sync::Arc;
use std::time::Duration;

use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_agent::fill::{fill_once, Outcome};
use nearcast_agent::Agent;
use nearcast_testkit::TempDir;

/// Registers with the box's current config, fetches its manifest and
/// fills it; the titles held after.
fn register_and_fill(rt: &tokio::runtime::Runtime, config: nearcast_agent::Config) -> (Arc<Agent>, Vec<String>) {
    let agent = Arc::new(Agent::new(config).unwrap());
    rt.block_on(async {
        let reg = nearcast_agent::daemon::registration(&agent);
        agent.server.register(&reg).await.unwrap();
        let manifest = agent.server.manifest().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let outcome = fill_once(&agent, &manifest, deadline).await;
        assert_eq!(outcome, Outcome::Complete, "{:?}", agent.progress.report().failures);
        agent.server.inventory(&agent.inventory.report()).await.unwrap();
    });
    let titles = agent.inventory.titles().into_iter().map(String::from).collect();
    (agent, titles)
}

#[test]
fn a_title_that_falls_out_of_the_manifest_is_evicted() {
    let root = TempDir::new("e2e-evict");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    let other_index = stack.package_copy("other").unwrap();
    let title_bytes: u64 = other_index.files.iter().map(|f| f.size).sum();
    stack.make_popular(TITLE, 10).unwrap();
    stack.make_popular("other", 5).unwrap();
    stack.add_box(|_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, held) = register_and_fill(&rt, stack.boxes[0].agent.clone());
    assert_eq!(held, vec!["other".to_string(), TITLE.to_string()]);

    // The box now offers room for one title: the less popular one goes.
    let smaller = nearcast_agent::Config {
        capacity_bytes: title_bytes + title_bytes / 10,
        ..stack.boxes[0].agent.clone()
    };
    let (agent, held) = register_and_fill(&rt, smaller);
    assert_eq!(held, vec![TITLE.to_string()]);
    let disk = &stack.boxes[0].disk;
    assert!(!disk.join("other").exists() && !disk.join(".nearcast/titles/other.json").exists());
    assert!(disk.join(TITLE).join("master.m3u8").is_file());
    assert!(nearcast_agent::admin::metrics(&agent).contains("nearcast_agent_titles_evicted_total 1\n"));
    let all: serde_json::Value =
        serde_json::from_str(&stack.admin("GET", "/v1/admin/appliances", "").unwrap()).unwrap();
    assert_eq!(all[0]["inventory"]["titles"], serde_json::json!([TITLE]));
}

#[test]
fn a_title_repackaged_at_the_origin_is_refilled() {
    let root = TempDir::new("e2e-repack");
    let mut stack = Stack::start(&root, Ports::EPHEMERAL, 30).unwrap();
    stack.make_popular(TITLE, 10).unwrap();
    stack.add_box(|_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, held) = register_and_fill(&rt, stack.boxes[0].agent.clone());
    assert_eq!(held, vec![TITLE.to_string()]);
    // Packaged again with 2 s segments: other files, other checksums.
    let opts = nearcast_packager::Options {
        title: nearcast_common::Name::new(TITLE).unwrap(),
        store: stack.config.origin_store.clone(),
        target: 2.0,
        progress: false,
        extras: Default::default(),
        encrypt: None,
    };
    let index = nearcast_packager::package(&nearcast::stack::sample_inputs(), &opts).unwrap();
    // The origin re-checks cached files after a second (`file_cache.valid_ms`);
    // until then it may serve the old bytes, which the agent would refuse.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (agent, held) = register_and_fill(&rt, stack.boxes[0].agent.clone());
    assert_eq!(held, vec![TITLE.to_string()]);
    for f in &index.files {
        let bytes = std::fs::read(stack.boxes[0].disk.join(TITLE).join(&f.path)).unwrap();
        assert_eq!(nearcast_common::sha256_hex(&bytes), f.sha256, "{}", f.path);
    }
    assert!(nearcast_agent::admin::metrics(&agent).contains("nearcast_agent_files_placed_total"));
}
