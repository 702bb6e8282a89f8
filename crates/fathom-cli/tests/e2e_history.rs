//! Flow history: records outlive the agent. A flow seen by one agent is answered by the next one
//! from the on-disk store, with the same filters as live.

mod support;

use support::*;

#[test]
fn flows_survive_an_agent_restart_and_answer_since_until_last() {
    let _s = serial();
    let lab = lab("e2ehist");
    let a = lab.pod("x/a").unwrap().clone();
    let b = lab.pod("y/b").unwrap().clone();
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("history.db");
    let db_arg = db.to_str().unwrap().to_string();
    let args = [
        "--type",
        "flow",
        "--from-pod",
        "x/a",
        "--to-pod",
        "y/b",
        "--event",
        "end",
    ];

    let before = fathom_model::Timestamp::now();
    let first = {
        let agent = Agent::start_with(&lab, &["--web-address", "off", "--store-path", &db_arg]);
        let _srv = http_server(&b, keep.path(), 8080);
        assert!(a
            .command("curl")
            .args(["-s", "-o", "/dev/null", &format!("http://{}:8080/", b.ipv4)])
            .status()
            .unwrap()
            .success());
        let recs = agent.wait_for(&args, "the flow end", |r| !r.is_empty());
        assert_eq!(recs.len(), 1);
        // The writer commits in batches of at most 200 ms; status shows it landed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while agent.status()["store"]["written"].as_u64().unwrap_or(0) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "store never wrote: {}",
                agent.status()["store"]
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        recs[0].clone()
    }; // first agent stops here (SIGINT, store flushed and closed)
    let after = fathom_model::Timestamp::now();

    let agent = Agent::start_with(&lab, &["--web-address", "off", "--store-path", &db_arg]);
    // Memory of the new agent holds nothing of the old flow.
    assert!(
        agent.observe(&args).is_empty(),
        "no --since: the in-memory ring only"
    );
    let since_arg = ["--since", "1h"];
    let recs = agent.observe(&[&args[..], &since_arg[..]].concat());
    assert_eq!(
        recs.len(),
        1,
        "the flow comes back from the history: {recs:#?}"
    );
    assert_eq!(
        recs[0], first,
        "byte for byte the record the first agent published"
    );

    let until_before = before.to_rfc3339();
    let none =
        agent.observe(&[&args[..], &["--since", "1h", "--until", &until_before][..]].concat());
    assert!(none.is_empty(), "--until before the flow: {none:#?}");
    let window = agent.observe(
        &[
            &args[..],
            &[
                "--since",
                &before.to_rfc3339(),
                "--until",
                &after.to_rfc3339(),
            ][..],
        ]
        .concat(),
    );
    assert_eq!(window.len(), 1);
    let last = agent.observe(&[&args[..], &["--last", "1"][..]].concat());
    assert_eq!(
        last.len(),
        1,
        "--last reaches into the history when memory has fewer"
    );
    assert_eq!(last[0]["flow_id"], first["flow_id"]);

    let st = agent.status();
    assert!(
        st["store"]["rows"].as_u64().unwrap_or(0) >= 1,
        "{}",
        st["store"]
    );
    assert_eq!(st["store"]["dropped"], 0);
}
