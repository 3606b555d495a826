//! Hostile modules (written in WAT below) are contained per call or refused
//! at validation, the old module keeps serving, and modules are swapped
//! while decisions run without one failing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flocker_core::Cluster;
use flocker_host::policy::{
    self, Limits, Policy, PolicyError, PolicyHost, PolicyInfo, Runtime, DEFAULT_MODULE,
};
use serde_json::{json, Value};

use crate::modules::{abi_module, Text};

/// A module whose `flocker_decide` and `flocker_snapshot_decide` run
/// `body` before returning an error result. `memory_pages` is its initial
/// memory.
fn hostile(body: &str, memory_pages: u32) -> Vec<u8> {
    hostile_abi(body, memory_pages, 1)
}

/// [`hostile`] claiming ABI version `abi`.
fn hostile_abi(body: &str, memory_pages: u32, abi: i32) -> Vec<u8> {
    let answer = Text {
        at: 2048,
        text: r#"{"error":{"kind":"invalid_request","message":"hostile"}}"#.into(),
    };
    let decide = format!("(call $body) (i64.const {})", answer.packed());
    abi_module(
        memory_pages,
        abi,
        &format!("(func $body {body})"),
        &[answer],
        &decide,
    )
}

fn looping() -> Vec<u8> {
    hostile("(loop $forever (br $forever))", 2)
}

fn trapping() -> Vec<u8> {
    hostile("(unreachable)", 2)
}

/// Grows its memory by 1 GiB when asked to decide.
fn growing() -> Vec<u8> {
    hostile(
        "(if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then (return))) (i32.store (i32.const 1073741824) (i32.const 1))",
        2,
    )
}

/// Asks for 1 GiB of memory up front.
fn huge() -> Vec<u8> {
    hostile("(nop)", 16384)
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Limits::default()).expect("runtime"))
}

/// The default module, compiled and validated once for the whole file.
fn default_policy() -> &'static (Policy, PolicyInfo) {
    static DEFAULT: OnceLock<(Policy, PolicyInfo)> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        policy::load_validated(runtime(), DEFAULT_MODULE).expect("default module validates")
    })
}

fn input() -> Value {
    json!({
        "name": "web.1",
        "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}},
        "inventory": [{"hostname": "n1", "address": "10.0.0.1"}, {"hostname": "n2", "address": "10.0.0.2"}],
        "routes": {"containers": {"auth.1": {"server": "n1", "ports": {"80/tcp": 20000}}}, "volumes": {}}
    })
}

fn request() -> Value {
    let mut r = input();
    let o = r.as_object_mut().unwrap();
    o.remove("inventory");
    o.remove("routes");
    r
}

#[test]
fn a_looping_module_is_stopped_at_the_deadline_and_the_runtime_keeps_serving() {
    let bad = runtime().load(&looping()).expect("compiles");
    for _ in 0..2 {
        match bad.decide(b"{}") {
            Err(PolicyError::Deadline { call, limit }) => {
                assert_eq!(call, "flocker_decide");
                assert_eq!(limit, Duration::from_millis(100));
            }
            other => panic!("expected a deadline error, got {other:?}"),
        }
    }
    let e = policy::validate(runtime(), &looping()).unwrap_err();
    assert!(
        matches!(e, PolicyError::Validation(ref m) if m.contains("deadline")),
        "{e}"
    );
    let native = flocker_core::decide_json(input().to_string().as_bytes());
    assert_eq!(
        default_policy()
            .0
            .decide(input().to_string().as_bytes())
            .unwrap(),
        native
    );
}

#[test]
fn a_configurable_deadline_applies() {
    let limits = Limits {
        deadline: Duration::from_millis(20),
        ..Limits::default()
    };
    let rt = Runtime::new(limits).unwrap();
    let e = rt.load(&looping()).unwrap().decide(b"{}").unwrap_err();
    assert_eq!(
        e,
        PolicyError::Deadline {
            call: "flocker_decide",
            limit: Duration::from_millis(20)
        }
    );
    assert!(e.to_string().contains("deadline"), "{e}");
}

#[test]
fn a_trapping_module_fails_the_call_with_the_trap() {
    let bad = runtime().load(&trapping()).expect("compiles");
    let e = bad.decide(b"{}").unwrap_err();
    assert!(
        matches!(
            e,
            PolicyError::Trap {
                call: "flocker_decide",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("unreachable"), "{e}");
    let e = policy::validate(runtime(), &trapping()).unwrap_err();
    assert!(
        matches!(e, PolicyError::Validation(ref m) if m.contains("trapped")),
        "{e}"
    );
}

#[test]
fn a_module_growing_by_a_gibibyte_hits_the_memory_cap() {
    let bad = runtime().load(&growing()).expect("compiles");
    let e = bad.decide(b"{}").unwrap_err();
    assert!(
        matches!(e, PolicyError::MemoryLimit { call: "flocker_decide", cap, .. } if cap == 64 << 20),
        "{e:?}"
    );
    let e = policy::validate(runtime(), &growing()).unwrap_err();
    assert!(
        matches!(e, PolicyError::Validation(ref m) if m.contains("memory")),
        "{e}"
    );

    let bad = runtime().load(&huge()).expect("compiles");
    let e = bad.decide(b"{}").unwrap_err();
    assert!(
        matches!(e, PolicyError::MemoryLimit { call: "instantiate", asked, .. } if asked == 1 << 30),
        "{e:?}"
    );
    let e = policy::validate(runtime(), &huge()).unwrap_err();
    assert!(matches!(e, PolicyError::MemoryLimit { .. }), "{e}");
}

#[test]
fn modules_that_break_the_abi_are_refused_at_load() {
    let cases: [(&str, &str); 3] = [
        ("(module)", "memory"),
        (
            r#"(module (memory (export "memory") 1))"#,
            "flocker_abi_version",
        ),
        (
            r#"(module (import "env" "f" (func)) (memory (export "memory") 1))"#,
            "imports env::f",
        ),
    ];
    for (wat, says) in cases {
        let e = runtime().load(&wat::parse_str(wat).unwrap()).unwrap_err();
        assert!(matches!(e, PolicyError::Abi(_)), "{wat}: {e:?}");
        assert!(e.to_string().contains(says), "{wat}: {e}");
    }
    assert!(matches!(
        runtime().load(b"not wasm"),
        Err(PolicyError::Compile(_))
    ));
    // The right exports, but ABI version 2.
    let e = policy::validate(runtime(), &hostile_abi("(nop)", 1, 2)).unwrap_err();
    assert!(
        matches!(e, PolicyError::Abi(ref m) if m.contains("ABI version 2")),
        "{e}"
    );
}

#[test]
fn a_failed_swap_keeps_the_old_module_and_says_why() {
    let (policy, info) = default_policy().clone();
    let host = PolicyHost::new(runtime().clone(), DEFAULT_MODULE).unwrap();
    host.activate(policy, info.clone());
    for (bad, says) in [
        (looping(), "deadline"),
        (trapping(), "trapped"),
        (growing(), "memory"),
        (huge(), "memory"),
        (b"\0asm".to_vec(), "compile"),
    ] {
        let e = host.swap(&bad).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(host.info(), info, "the old module stays active");
        let out = host.decide(input().to_string().as_bytes()).unwrap();
        assert_eq!(
            out,
            flocker_core::decide_json(input().to_string().as_bytes())
        );
    }
}

/// The default module with a custom section appended: the same engine,
/// another digest.
fn variant(tag: u8) -> Vec<u8> {
    let mut m = DEFAULT_MODULE.to_vec();
    let name = b"flocker-test";
    let payload = [tag];
    m.push(0);
    m.push((1 + name.len() + payload.len()) as u8);
    m.push(name.len() as u8);
    m.extend_from_slice(name);
    m.extend_from_slice(&payload);
    m
}

#[test]
fn swapping_while_decisions_run_fails_none_of_them() {
    const PER_WORKER: usize = 500;
    let (policy, info) = default_policy().clone();
    let host = Arc::new(PolicyHost::new(runtime().clone(), DEFAULT_MODULE).unwrap());
    host.activate(policy.clone(), info.clone());
    let other = policy::load_validated(runtime(), &variant(1)).unwrap();
    assert_ne!(other.1.digest, info.digest);

    let full = input().to_string();
    let req = request().to_string();
    let expected = flocker_core::decide_json(full.as_bytes());
    let cluster = Arc::new(Cluster::from_snapshot(&input()).unwrap());
    let running = Arc::new(AtomicUsize::new(2));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (host, running, failures) = (host.clone(), running.clone(), failures.clone());
            let (full, req, expected, cluster) =
                (full.clone(), req.clone(), expected.clone(), cluster.clone());
            std::thread::spawn(move || {
                for i in 0..PER_WORKER {
                    // Worker 0 decides one-shot, worker 1 on resident state.
                    let out = if w == 0 {
                        host.decide(full.as_bytes())
                    } else {
                        host.decide_resident(&cluster, req.as_bytes())
                    };
                    match out {
                        Ok(o) => assert_eq!(o, expected, "worker {w} decision {i}"),
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push(format!("worker {w} decision {i}: {e}")),
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();

    // While the workers run: swaps through validation (refused ones and a
    // good one) and activations of precompiled modules, back and forth.
    // The validating swap compiles the full module, which takes longer in a
    // debug build than the decisions; it runs beside the fast swaps.
    let heavy = {
        let host = host.clone();
        std::thread::spawn(move || host.swap(&variant(2)).map(|_| ()))
    };
    let mut swaps = 0;
    let trap = trapping();
    while running.load(Ordering::SeqCst) > 0 {
        if swaps % 25 == 0 {
            assert!(host.swap(&trap).is_err());
        }
        std::thread::sleep(Duration::from_micros(200));
        let (p, i) = if swaps % 2 == 0 {
            other.clone()
        } else {
            (policy.clone(), info.clone())
        };
        host.activate(p, i);
        swaps += 1;
    }
    for w in workers {
        w.join().expect("worker");
    }
    heavy
        .join()
        .expect("swap thread")
        .expect("the variant module validates");
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} decisions failed across {swaps} swaps: {failures:#?}",
        failures.len(),
        2 * PER_WORKER
    );
    assert!(
        swaps > 10,
        "only {swaps} swaps happened during the decisions"
    );
}

#[test]
fn resident_state_follows_changes_and_survives_a_swap() {
    let (policy, info) = default_policy().clone();
    let host = PolicyHost::new(runtime().clone(), DEFAULT_MODULE).unwrap();
    host.activate(policy, info);
    let (tx, rx) = tokio::sync::broadcast::channel(16);
    host.follow(rx);
    let mut native = Cluster::from_snapshot(&input()).unwrap();
    let cluster = Arc::new(native.clone());
    let req = request().to_string();
    assert_eq!(
        host.decide_resident(&cluster, req.as_bytes()).unwrap(),
        native.decide_json(req.as_bytes())
    );

    // A change the module hears about through the feed (with a feed the
    // state is never rebuilt from a new cluster `Arc`; the new one is what
    // the decision is checked against): a third, empty server that wins on
    // load.
    let change =
        json!({"op": "upsert_server", "server": {"hostname": "n0", "address": "10.0.0.9"}});
    native.apply(&change).unwrap();
    tx.send(flocker_core::Change::from_value(&change, "").unwrap())
        .unwrap();
    let with_n0 = Arc::new(native.clone());
    let out = host.decide_resident(&with_n0, req.as_bytes()).unwrap();
    assert_eq!(out, native.decide_json(req.as_bytes()));
    assert!(out.contains("\"hostname\":\"n0\""), "{out}");

    // After a swap the state is rebuilt from the cluster given then.
    host.swap(&variant(3)).unwrap();
    let fresh = Arc::new(native.clone());
    assert_eq!(
        host.decide_resident(&fresh, req.as_bytes()).unwrap(),
        native.decide_json(req.as_bytes())
    );

    // When the store's feed closes, the state follows the cluster it is given.
    drop(tx);
    native
        .apply(&json!({"op": "remove_server", "hostname": "n0"}))
        .unwrap();
    let after = Arc::new(native.clone());
    let out = host.decide_resident(&after, req.as_bytes()).unwrap();
    assert_eq!(out, native.decide_json(req.as_bytes()));
    assert!(!out.contains("\"hostname\":\"n0\""), "{out}");
}

#[test]
fn a_one_shot_input_too_big_for_the_memory_cap_fails_that_call_only() {
    // A long deadline, so that the memory cap (the default) is what stops it.
    let rt = Runtime::new(Limits {
        deadline: Duration::from_secs(30),
        ..Limits::default()
    })
    .unwrap();
    let policy = rt.load(DEFAULT_MODULE).unwrap();
    // About 23 MiB of routes: over what the 64 MiB one-shot cap holds
    // (the input, its copy in the module and the records read from it;
    // 12 MiB was over it while the module built a `Value` tree).
    let mut input = input();
    let containers = input["routes"]["containers"].as_object_mut().unwrap();
    for r in 0..200_000 {
        containers.insert(
            format!("filler.{r}"),
            json!({"server": "n2", "ports": {}, "env": ["PASSWORD=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"], "state": "removed"}),
        );
    }
    let big = input.to_string();
    assert!(big.len() > 20 << 20, "{} bytes", big.len());
    assert!(
        big.len() < flocker_core::MAX_INPUT_BYTES,
        "{} bytes",
        big.len()
    );
    let e = policy.decide(big.as_bytes()).unwrap_err();
    assert!(
        matches!(e, PolicyError::MemoryLimit { cap, .. } if cap == 64 << 20),
        "{e:?}"
    );
    assert!(e.to_string().contains("over the cap"), "{e}");
    let small = self::input().to_string();
    assert_eq!(
        policy.decide(small.as_bytes()).unwrap(),
        flocker_core::decide_json(small.as_bytes())
    );
}
