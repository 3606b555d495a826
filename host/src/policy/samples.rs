//! The built-in sample inputs a module must decide before it takes traffic.
//!
//! They cover the paths a real proxy hits: ports from the image and the
//! container, a link to a service group, a named volume pin, tags, and an
//! error answer. Each must come back as a well-formed result; the
//! `Expect::Decision` ones must be decisions, and the resident-state path
//! (load the cluster, decide `{name, container, image}`) must give the same
//! bytes as the one-shot path.

use serde_json::{json, Value};

use super::{Policy, PolicyError, Resident};

/// What a sample must come back as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A decision (an object with `server`).
    Decision,
    /// An `{"error": {"kind": ...}}` answer; the engine must say no, not trap.
    Error,
}

/// A named sample input.
pub struct Sample {
    pub name: &'static str,
    pub expect: Expect,
    pub input: fn() -> Value,
}

fn inventory() -> Value {
    json!([
        {"hostname": "node1", "address": "10.0.0.1", "tags": ["ssd", "eu"], "max_containers": 50},
        {"hostname": "node2", "address": "10.0.0.2", "tags": ["eu"], "port_range": [30000, 30100]},
        {"hostname": "node3", "address": "10.0.0.3", "reserved": true}
    ])
}

fn routes() -> Value {
    json!({
        "containers": {
            "auth.1": {"name": "auth.1", "service": "auth", "server": "node2", "address": "10.0.0.2",
                        "ports": {"80/tcp": 30000}, "env": ["PASSWORD=x"], "volumes": [], "state": "live"},
            "auth.2": {"name": "auth.2", "service": "auth", "server": "node1", "address": "10.0.0.1",
                        "ports": {"80/tcp": 20000}, "env": ["PASSWORD=x"], "volumes": [], "state": "live"},
            "data.1": {"name": "data.1", "service": "data", "server": "node1", "address": "10.0.0.1",
                        "ports": {}, "env": [], "volumes": ["/data"], "state": "live"}
        },
        "volumes": {"pgdata": "node2"}
    })
}

fn with_cluster(mut request: Value) -> Value {
    if let Some(o) = request.as_object_mut() {
        o.insert("inventory".into(), inventory());
        o.insert("routes".into(), routes());
    }
    request
}

/// The samples, in the order they run.
pub const SAMPLES: &[Sample] = &[
    Sample {
        name: "unnamed container with image ports",
        expect: Expect::Decision,
        input: || {
            with_cluster(json!({
                "container": {"Image": "nginx"},
                "image": {"Config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}}
            }))
        },
    },
    Sample {
        name: "named app linking a service group",
        expect: Expect::Decision,
        input: || {
            with_cluster(json!({
                "name": "myapp.1",
                "container": {"Image": "acme/myapp", "Env": ["A=1"],
                              "ExposedPorts": {"8080/tcp": {}},
                              "HostConfig": {"Links": ["auth:auth"], "PortBindings": {"9090/tcp": [{"HostPort": ""}]}}},
                "image": {"Config": {"Env": ["PATH=/bin"]}}
            }))
        },
    },
    Sample {
        name: "named volume pin",
        expect: Expect::Decision,
        input: || {
            with_cluster(json!({
                "name": "db.1",
                "container": {"Image": "postgres", "HostConfig": {"Binds": ["pgdata:/var/lib/postgresql/data"]}},
                "image": {"Config": {"ExposedPorts": {"5432/tcp": {}}}}
            }))
        },
    },
    Sample {
        name: "tags and volumes_from",
        expect: Expect::Decision,
        input: || {
            with_cluster(json!({
                "name": "web.1",
                "container": {"Image": "web", "Env": ["VIKING_TAGS=ssd,!gpu"],
                              "HostConfig": {"VolumesFrom": ["data.1:ro"]}}
            }))
        },
    },
    Sample {
        name: "name already in use",
        expect: Expect::Error,
        input: || with_cluster(json!({"name": "auth.1", "container": {"Image": "auth"}})),
    },
];

fn fail(sample: &Sample, why: impl std::fmt::Display) -> PolicyError {
    PolicyError::Validation(format!("sample {:?}: {why}", sample.name))
}

/// Checks one output against what the sample expects.
fn check_output(sample: &Sample, out: &str) -> Result<(), PolicyError> {
    let v: Value = serde_json::from_str(out)
        .map_err(|e| fail(sample, format!("output is not JSON ({e}): {out}")))?;
    let is_error = match v.get("error") {
        Some(e) => {
            if e.get("kind").and_then(Value::as_str).is_none()
                || e.get("message").and_then(Value::as_str).is_none()
            {
                return Err(fail(
                    sample,
                    format!("error without kind and message: {out}"),
                ));
            }
            true
        }
        None => {
            if v.get("server")
                .and_then(|s| s.get("hostname"))
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(fail(
                    sample,
                    format!("neither a decision nor an error: {out}"),
                ));
            }
            false
        }
    };
    match (sample.expect, is_error) {
        (Expect::Decision, true) => Err(fail(sample, format!("expected a decision, got {out}"))),
        (Expect::Error, false) => Err(fail(sample, format!("expected an error answer, got {out}"))),
        _ => Ok(()),
    }
}

/// Runs every sample one-shot and on resident state.
pub fn check(policy: &Policy) -> Result<(), PolicyError> {
    let snapshot = json!({"inventory": inventory(), "routes": routes()}).to_string();
    let mut resident = Resident::from_json(policy, snapshot.as_bytes())
        .map_err(|e| PolicyError::Validation(format!("loading the sample cluster: {e}")))?;
    for sample in SAMPLES {
        let input = (sample.input)();
        let one_shot = policy
            .decide(input.to_string().as_bytes())
            .map_err(|e| fail(sample, e))?;
        check_output(sample, &one_shot)?;
        let mut request = input;
        if let Some(o) = request.as_object_mut() {
            o.remove("inventory");
            o.remove("routes");
        }
        let resident_out = resident
            .decide(request.to_string().as_bytes())
            .map_err(|e| fail(sample, format!("resident state: {e}")))?;
        if resident_out != one_shot {
            return Err(fail(
                sample,
                format!("resident state decided {resident_out}, one-shot decided {one_shot}"),
            ));
        }
    }
    Ok(())
}
