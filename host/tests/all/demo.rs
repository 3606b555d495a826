//! The store-only demo, `scripts/demo-store.sh`, runs and places the app as it says.

use crate::common::*;

#[test]
fn demo_script_places_the_app_and_lists_its_routes() {
    let out = std::process::Command::new("bash")
        .arg(workspace().join("scripts/demo-store.sh"))
        .env("FLOCKER", BIN)
        .env_remove("FLOCKER_STORE")
        .output()
        .expect("run scripts/demo-store.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"server\""))
        .map(|l| serde_json::from_str(l).expect("a decision line"))
        .collect();
    assert_eq!(decisions.len(), 5, "{stdout}");
    let on = |name: &str| {
        decisions
            .iter()
            .find(|d| d["route"]["name"] == name)
            .map(|d| d["server"]["hostname"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no decision for {name}"))
    };
    assert_ne!(on("auth.1"), on("auth.2"));
    assert_eq!(on("myapp.1"), on("data.1"));
    let routes = stdout
        .split("$ flocker routes ls\n")
        .nth(1)
        .expect("a routes table");
    assert_eq!(
        routes.lines().filter(|l| l.contains(" live ")).count(),
        5,
        "{routes}"
    );
    assert!(
        routes.contains("pgdata") && routes.contains("appdata"),
        "{routes}"
    );
}
