//! Bytes split into a snapshot, change records and a request, fed through
//! the resident-state API: never a panic, and the state built by changes
//! decides like the state loaded from its own snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let (Some(snapshot), Some(changes), Some(request)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let Ok(snapshot) = serde_json::from_slice::<serde_json::Value>(snapshot) else {
        return;
    };
    let Ok(mut cluster) = flocker_core::Cluster::from_snapshot(&snapshot) else {
        return;
    };
    if let Ok(changes) = serde_json::from_slice::<serde_json::Value>(changes) {
        let _ = cluster.apply(&changes);
    }
    let out = cluster.decide_json(request);
    let reloaded =
        flocker_core::Cluster::from_snapshot(&cluster.to_snapshot()).expect("own snapshot loads");
    assert_eq!(out, reloaded.decide_json(request));
});
