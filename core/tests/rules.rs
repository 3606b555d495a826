//! One test (at least) per rule of SPEC section 3, named for the rule:
//! `routing_<n>_...`, `mapping_<n>_...`, `naming_...`, `links_<n>_...`, and
//! `input_...` for the bad-input answers of issue 2.

use serde_json::{json, Value};

fn decide(input: Value) -> Value {
    serde_json::from_str(&flocker_core::decide_json(input.to_string().as_bytes())).unwrap()
}

fn server(host: &str, n: u8) -> Value {
    json!({"hostname": host, "address": format!("10.0.0.{n}")})
}

fn three() -> Value {
    json!([server("node1", 1), server("node2", 2), server("node3", 3)])
}

fn route(name: &str, server: &str, ports: Value) -> Value {
    let (service, _) = name.rsplit_once('.').unwrap_or((name, ""));
    let n = server.trim_start_matches("node");
    json!({"name": name, "service": service, "server": server, "address": format!("10.0.0.{n}"),
           "ports": ports, "env": [], "volumes": [], "state": "live"})
}

fn input(name: Option<&str>, container: Value, inventory: Value, routes: Value) -> Value {
    let mut v = json!({"container": container, "inventory": inventory, "routes": routes});
    if let Some(n) = name {
        v["name"] = json!(n);
    }
    v
}

fn chosen(out: &Value) -> &str {
    out["server"]["hostname"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision: {out}"))
}

fn kind(out: &Value) -> &str {
    out["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {out}"))
}

fn env(out: &Value) -> Vec<&str> {
    out["container"]["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

// --- Routing ---------------------------------------------------------------

#[test]
fn routing_1_viking_server_keeps_only_that_server() {
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_SERVER=node3"]}),
        three(),
        json!({}),
    ));
    assert_eq!(chosen(&out), "node3");
    assert_eq!(out["explain"]["rejected"]["node1"], "not VIKING_SERVER");
    assert_eq!(
        out["explain"]["summary"],
        "1/3 servers eligible: 2 not VIKING_SERVER"
    );
}

#[test]
fn routing_1_unknown_viking_server_is_unknown_server() {
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_SERVER=nodeX"]}),
        three(),
        json!({}),
    ));
    assert_eq!(kind(&out), "unknown_server");
    assert!(out["error"]["message"].as_str().unwrap().contains("nodeX"));
}

#[test]
fn routing_2_viking_tags_need_every_plain_tag_and_no_negated_tag() {
    let inv = json!([
        {"hostname": "a", "address": "1", "tags": ["ssd"]},
        {"hostname": "b", "address": "2", "tags": ["ssd", "eu", "gpu"]},
        {"hostname": "c", "address": "3", "tags": ["ssd", "eu"]},
        {"hostname": "d", "address": "4", "tags": ["SSD", "eu"]},
    ]);
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_TAGS= ssd, eu,,!gpu "]}),
        inv,
        json!({}),
    ));
    assert_eq!(chosen(&out), "c");
    let r = &out["explain"]["rejected"];
    assert_eq!(r["a"], "missing tag eu");
    assert_eq!(r["b"], "has tag !gpu");
    assert_eq!(r["d"], "missing tag ssd", "tags are case-sensitive");
}

#[test]
fn routing_3_full_servers_are_removed() {
    let inv = json!([
        {"hostname": "a", "address": "1", "full": true},
        {"hostname": "b", "address": "2", "max_containers": 3, "containers": 3},
        {"hostname": "c", "address": "3", "max_containers": 1},
        {"hostname": "d", "address": "4", "containers": 9},
    ]);
    let routes = json!({"containers": {"x.1": route("x.1", "c", json!({}))}});
    let out = decide(input(None, json!({}), inv, routes));
    assert_eq!(chosen(&out), "d");
    let r = &out["explain"]["rejected"];
    for h in ["a", "b", "c"] {
        assert_eq!(r[h], "full", "{h}");
    }
    assert_eq!(out["explain"]["summary"], "1/4 servers eligible: 3 full");
}

#[test]
fn routing_3_load_is_containers_when_given_else_live_routes() {
    let inv = json!([
        {"hostname": "a", "address": "1", "containers": 1},
        {"hostname": "b", "address": "2"},
    ]);
    let mut removed = route("y.1", "b", json!({}));
    removed["state"] = json!("removed");
    let routes = json!({"containers": {
        "x.1": route("x.1", "b", json!({})), "x.2": route("x.2", "b", json!({})),
        "x.3": route("x.3", "a", json!({})), "y.1": removed}});
    assert_eq!(chosen(&decide(input(None, json!({}), inv, routes))), "a");
}

#[test]
fn routing_3_reserved_servers_take_only_what_is_sent_to_them() {
    let inv = json!([
        {"hostname": "a", "address": "1", "reserved": true},
        {"hostname": "b", "address": "2", "containers": 5},
    ]);
    let out = decide(input(None, json!({}), inv.clone(), json!({})));
    assert_eq!(chosen(&out), "b");
    assert_eq!(out["explain"]["rejected"]["a"], "reserved");
    let named = decide(input(
        None,
        json!({"Env": ["VIKING_SERVER=a"]}),
        inv.clone(),
        json!({}),
    ));
    assert_eq!(chosen(&named), "a");
    let pinned = decide(input(
        None,
        json!({"HostConfig": {"Binds": ["pg:/data"]}}),
        inv,
        json!({"volumes": {"pg": "a"}}),
    ));
    assert_eq!(chosen(&pinned), "a");
}

fn down_node3() -> Value {
    json!([server("node1", 1), server("node2", 2),
           {"hostname": "node3", "address": "10.0.0.3", "down": true}])
}

#[test]
fn routing_3_down_server_is_removed_with_reason_down() {
    // node1 is the least loaded, but down; down also comes before full,
    // reserved and tags in the explanation.
    let inv = json!([
        {"hostname": "node1", "address": "1", "down": true, "full": true, "reserved": true},
        {"hostname": "node2", "address": "2", "containers": 3},
        {"hostname": "node3", "address": "3", "containers": 4, "down": false},
    ]);
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_TAGS=x"]}),
        inv.clone(),
        json!({}),
    ));
    assert_eq!(out["error"]["explain"]["rejected"]["node1"], "down");
    assert_eq!(
        out["error"]["explain"]["summary"],
        "0/3 servers eligible: 2 missing tag x, 1 down"
    );
    let out = decide(input(None, json!({}), inv, json!({})));
    assert_eq!(chosen(&out), "node2");
    assert_eq!(out["explain"]["rejected"]["node1"], "down");
    assert_eq!(out["explain"]["summary"], "2/3 servers eligible: 1 down");
}

#[test]
fn routing_3_down_server_named_by_viking_server_is_no_eligible_server() {
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_SERVER=node3"]}),
        down_node3(),
        json!({}),
    ));
    assert_eq!(kind(&out), "no_eligible_server");
    let explain = &out["error"]["explain"];
    assert_eq!(explain["rejected"]["node3"], "down");
    assert_eq!(explain["rejected"]["node1"], "not VIKING_SERVER");
    assert_eq!(
        explain["summary"],
        "0/3 servers eligible: 2 not VIKING_SERVER, 1 down"
    );
}

#[test]
fn routing_3_down_server_pinned_is_pinned_server_unavailable() {
    let mut previous = route("db.1", "node3", json!({}));
    previous["state"] = json!("removed");
    let routes = json!({
        "containers": {"data.1": route("data.1", "node3", json!({})),
                       "vpn.1": route("vpn.1", "node3", json!({})),
                       "db.1": previous},
        "volumes": {"pg": "node3"}});
    let cases = [
        (
            None,
            json!({"HostConfig": {"Binds": ["pg:/pg"]}}),
            "volume pg",
        ),
        (
            Some("db.1"),
            json!({"HostConfig": {"Binds": ["/srv:/srv"]}}),
            "previous location of db.1",
        ),
        (
            None,
            json!({"HostConfig": {"VolumesFrom": ["data.1"]}}),
            "volumes_from data.1",
        ),
        (
            None,
            json!({"HostConfig": {"NetworkMode": "container:vpn.1"}}),
            "network container:vpn.1",
        ),
        // VIKING_SERVER agrees, but the volume's data is what holds it there.
        (
            None,
            json!({"Env": ["VIKING_SERVER=node3"], "HostConfig": {"Binds": ["pg:/pg"]}}),
            "volume pg",
        ),
    ];
    for (name, c, by) in cases {
        let out = decide(input(name, c, down_node3(), routes.clone()));
        assert_eq!(kind(&out), "pinned_server_unavailable", "{by}: {out}");
        let msg = out["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{by} -> node3")), "{msg}");
        assert!(msg.contains("node3 is down"), "{msg}");
        assert_eq!(
            out["error"]["pins"],
            json!([{"pin": by, "server": "node3"}])
        );
    }
    // A reserved server that is down is down for its pins too.
    let mut inv = down_node3();
    inv[2]["reserved"] = json!(true);
    let out = decide(input(
        None,
        json!({"HostConfig": {"Binds": ["pg:/pg"]}}),
        inv,
        routes,
    ));
    assert_eq!(kind(&out), "pinned_server_unavailable");
}

#[test]
fn routing_3_decide_with_down_is_deciding_with_down_records() {
    use std::collections::BTreeSet;
    let snapshot = |inv: Value| {
        flocker_core::Cluster::from_snapshot(&json!({"inventory": inv,
            "routes": {"containers": {"data.1": route("data.1", "node3", json!({}))}}}))
        .unwrap()
    };
    let up = snapshot(three());
    let recorded = snapshot(down_node3());
    let down: BTreeSet<String> = ["node3", "node9"].map(String::from).into();
    let requests = [
        json!({"name": "a.1", "container": {}}),
        json!({"name": "a.2", "container": {"Env": ["VIKING_SERVER=node3"]}}),
        json!({"name": "a.3", "container": {"HostConfig": {"VolumesFrom": ["data.1"]}}}),
    ];
    for r in &requests {
        let with = flocker_core::render(&up.decide_with_down(r, &down));
        assert_eq!(with, flocker_core::render(&recorded.decide(r)), "{r}");
        assert_eq!(
            with,
            flocker_core::render(&recorded.decide_with_down(r, &down)),
            "{r}"
        );
    }
    // An empty set is decide.
    let none = BTreeSet::new();
    assert_eq!(
        flocker_core::render(&up.decide_with_down(&requests[0], &none)),
        flocker_core::render(&up.decide(&requests[0]))
    );
}

#[test]
fn routing_4_a_taken_explicit_host_port_removes_the_server() {
    let routes = json!({"containers": {"w.1": route("w.1", "node1", json!({"80/tcp": 8080}))}});
    let c =
        json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}});
    let inv = json!([server("node1", 1), {"hostname": "node2", "address": "2", "containers": 4}]);
    let out = decide(input(None, c, inv, routes));
    assert_eq!(chosen(&out), "node2");
    assert_eq!(out["explain"]["rejected"]["node1"], "port 8080 taken");
}

#[test]
fn routing_4_a_range_without_enough_free_ports_removes_the_server() {
    let inv = json!([
        {"hostname": "a", "address": "1", "port_range": [20000, 20001]},
        {"hostname": "b", "address": "2", "containers": 7},
    ]);
    let routes = json!({"containers": {"w.1": route("w.1", "a", json!({"80/tcp": 20000}))}});
    let c = json!({"ExposedPorts": {"80/tcp": {}, "81/tcp": {}}});
    let out = decide(input(None, c.clone(), inv.clone(), routes.clone()));
    assert_eq!(chosen(&out), "b");
    assert_eq!(out["explain"]["rejected"]["a"], "no free port in range");
    let one = decide(input(
        None,
        json!({"ExposedPorts": {"80/tcp": {}}}),
        inv,
        routes,
    ));
    assert_eq!(chosen(&one), "a");
}

#[test]
fn routing_5_fewest_containers_then_same_service_then_hostname() {
    let routes = json!({"containers": {
        "web.1": route("web.1", "node1", json!({})),
        "db.1": route("db.1", "node2", json!({})),
        "db.2": route("db.2", "node3", json!({})),
        "web.2": route("web.2", "node3", json!({}))}});
    // node1: 1 (web), node2: 1 (db), node3: 2.
    let out = decide(input(Some("web.3"), json!({}), three(), routes.clone()));
    assert_eq!(chosen(&out), "node2", "fewer web members on node2");
    let out = decide(input(Some("db.3"), json!({}), three(), routes.clone()));
    assert_eq!(chosen(&out), "node1", "fewer db members on node1");
    let out = decide(input(Some("api.1"), json!({}), three(), routes));
    assert_eq!(chosen(&out), "node1", "smallest hostname");
}

#[test]
fn routing_no_eligible_server_explains_every_server() {
    let inv = json!([{"hostname": "a", "address": "1", "full": true}, {"hostname": "b", "address": "2", "tags": []}]);
    let out = decide(input(
        None,
        json!({"Env": ["VIKING_TAGS=ssd"]}),
        inv,
        json!({}),
    ));
    assert_eq!(kind(&out), "no_eligible_server");
    assert_eq!(
        out["error"]["explain"]["summary"],
        "0/2 servers eligible: 2 missing tag ssd"
    );
    assert_eq!(out["error"]["explain"]["rejected"]["b"], "missing tag ssd");
}

// --- Mapping ---------------------------------------------------------------

#[test]
fn mapping_1_exposed_ports_get_the_lowest_free_ports_in_link_order() {
    let inv = json!([{"hostname": "a", "address": "1", "port_range": [20000, 20010]}]);
    let routes = json!({"containers": {"w.1": route("w.1", "a", json!({"80/tcp": 20000, "81/tcp": 20002}))}});
    let c = json!({
        "ExposedPorts": {"53/udp": {}},
        "HostConfig": {"PortBindings": {"8080": [{"HostIp": "127.0.0.1", "HostPort": ""}], "443/tcp": [{"HostPort": "20001"}]}}
    });
    let mut i = input(Some("app.1"), c, inv, routes);
    i["image"] = json!({"Config": {"ExposedPorts": {"9000/tcp": {}}}});
    let out = decide(i);
    // Link order: 443/tcp (explicit 20001), 8080/tcp, 9000/tcp, 53/udp.
    assert_eq!(
        out["route"]["ports"],
        json!({"443/tcp": 20001, "8080/tcp": 20003, "9000/tcp": 20004, "53/udp": 20005})
    );
    let pb = &out["container"]["HostConfig"]["PortBindings"];
    assert_eq!(
        pb["8080"],
        json!([{"HostIp": "127.0.0.1", "HostPort": "20003"}]),
        "binding kept, port filled"
    );
    assert_eq!(pb["443/tcp"], json!([{"HostPort": "20001"}]));
    assert_eq!(pb["9000/tcp"], json!([{"HostIp": "", "HostPort": "20004"}]));
    assert_eq!(pb["53/udp"], json!([{"HostIp": "", "HostPort": "20005"}]));
}

/// Every `HostPort` the rewritten body binds, as numbers.
fn bound_host_ports(out: &Value) -> Vec<u64> {
    let mut ports: Vec<u64> = out["container"]["HostConfig"]["PortBindings"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, list)| list.as_array().into_iter().flatten())
        .filter_map(|b| b["HostPort"].as_str()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

#[test]
fn mapping_1_every_binding_claimed_so_no_two_containers_share_a_host_port() {
    let inv = json!([{"hostname": "a", "address": "1", "port_range": [20000, 20010]}]);
    let c = json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}, {"HostIp": "::1"}]}}});
    let first = decide(input(Some("w.1"), c.clone(), inv.clone(), json!({})));
    let first_ports = bound_host_ports(&first);
    assert_eq!(first_ports, [20000, 20001]);
    let routes = json!({"containers": {"w.1": first["route"].clone()}});
    let second = decide(input(Some("w.2"), c, inv, routes));
    let second_ports = bound_host_ports(&second);
    assert_eq!(second_ports.len(), 2, "{second}");
    for p in &second_ports {
        assert!(
            !first_ports.contains(p),
            "host port {p} bound by both w.1 {first_ports:?} and w.2 {second_ports:?}"
        );
    }
}

#[test]
fn mapping_1_host_network_records_each_port_as_its_own_host_port() {
    let c = json!({"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"NetworkMode": "host"}});
    let out = decide(input(Some("h.1"), c, three(), json!({})));
    assert_eq!(out["route"]["ports"], json!({"80/tcp": 80}));
    assert_eq!(out["route"]["host_ports"], json!([80]));
    assert!(out["container"]["HostConfig"].get("PortBindings").is_none());
    // One number per port, whatever its protocol.
    let c = json!({"ExposedPorts": {"53/udp": {}, "53/tcp": {}, "8080/tcp": {}},
                   "HostConfig": {"NetworkMode": "host"}});
    let out = decide(input(Some("h.2"), c, three(), json!({})));
    assert_eq!(out["route"]["host_ports"], json!([53, 8080]));
}

#[test]
fn mapping_1_host_ports_list_every_binding_ascending_and_ports_the_first() {
    let inv = json!([{"hostname": "a", "address": "1", "port_range": [20000, 20010]}]);
    let c = json!({"ExposedPorts": {"53/udp": {}}, "HostConfig": {"PortBindings": {
        "80/tcp": [{"HostPort": "9000"}, {"HostPort": ""}, {"HostPort": "8000-8010"}],
        "443/tcp": [{"HostPort": "9000"}]}}});
    let out = decide(input(Some("w.1"), c, inv, json!({})));
    assert_eq!(
        out["route"]["ports"],
        json!({"80/tcp": 9000, "443/tcp": 9000, "53/udp": 20001})
    );
    assert_eq!(
        out["route"]["host_ports"],
        json!([8000, 9000, 20000, 20001])
    );
    let keys: Vec<&str> = out["route"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "service",
            "server",
            "address",
            "ports",
            "host_ports",
            "env",
            "volumes",
            "state"
        ]
    );
}

#[test]
fn mapping_1_a_live_routes_host_ports_are_used_not_only_its_ports() {
    let inv = json!([{"hostname": "a", "address": "1", "port_range": [20000, 20003]},
                     {"hostname": "b", "address": "2", "containers": 9}]);
    let mut old = route("w.1", "a", json!({"80/tcp": 20000}));
    old["host_ports"] = json!([20000, 20001, 20002]);
    let routes = json!({"containers": {"w.1": old}});
    let out = decide(input(
        Some("w.2"),
        json!({"ExposedPorts": {"80/tcp": {}}}),
        inv.clone(),
        routes.clone(),
    ));
    assert_eq!(out["route"]["host_ports"], json!([20003]));
    let c = json!({"HostConfig": {"PortBindings": {"81/tcp": [{"HostPort": "20002"}]}}});
    let out = decide(input(Some("w.3"), c, inv.clone(), routes.clone()));
    assert_eq!(out["explain"]["rejected"]["a"], "port 20002 taken");
    // Removed, the route holds nothing.
    let mut removed = routes.clone();
    removed["containers"]["w.1"]["state"] = json!("removed");
    let out = decide(input(
        Some("w.2"),
        json!({"ExposedPorts": {"80/tcp": {}}}),
        inv,
        removed,
    ));
    assert_eq!(out["route"]["host_ports"], json!([20000]));
}

#[test]
fn mapping_1_container_network_publishes_nothing_and_pins() {
    let routes = json!({"containers": {"vpn.1": route("vpn.1", "node2", json!({}))}});
    let c =
        json!({"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"NetworkMode": "container:vpn.1"}});
    let out = decide(input(Some("app.1"), c, three(), routes));
    assert_eq!(chosen(&out), "node2");
    assert_eq!(out["route"]["ports"], json!({}));
    assert_eq!(out["route"]["host_ports"], json!([]));
    assert!(out["container"]["HostConfig"].get("PortBindings").is_none());
}

#[test]
fn mapping_2_a_known_named_volume_pins_the_container() {
    let c = json!({"HostConfig": {"Binds": ["/host:/h", "pgdata:/var/lib/postgresql/data"]}});
    let out = decide(input(
        Some("db.1"),
        c,
        three(),
        json!({"volumes": {"pgdata": "node3"}}),
    ));
    assert_eq!(chosen(&out), "node3");
    assert_eq!(out["explain"]["rejected"]["node1"], "not the pinned server");
    assert_eq!(out["route"]["volumes"], json!(["pgdata"]));
    let m =
        json!({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "pgdata", "Target": "/d"}]}});
    assert_eq!(
        chosen(&decide(input(
            None,
            m,
            three(),
            json!({"volumes": {"pgdata": "node2"}})
        ))),
        "node2"
    );
}

#[test]
fn mapping_3_a_named_container_with_volumes_returns_to_its_previous_server() {
    let mut old = route("db.1", "node3", json!({}));
    old["state"] = json!("removed");
    let routes = json!({"containers": {"db.1": old}});
    let inv = json!([server("node1", 1), server("node2", 2), {"hostname": "node3", "address": "3", "containers": 9}]);
    let mut i = input(Some("db.1"), json!({}), inv.clone(), routes.clone());
    i["image"] = json!({"Config": {"Volumes": {"/data": {}}}});
    assert_eq!(chosen(&decide(i)), "node3");
    // Without any volume it is placed afresh.
    assert_eq!(
        chosen(&decide(input(Some("db.1"), json!({}), inv, routes))),
        "node1"
    );
}

#[test]
fn mapping_4_volumes_from_pins_to_the_source_and_needs_a_live_source() {
    let routes = json!({"containers": {"data.1": route("data.1", "node2", json!({}))}});
    let c = json!({"HostConfig": {"VolumesFrom": ["data.1:ro"]}});
    assert_eq!(
        chosen(&decide(input(Some("app.1"), c, three(), routes.clone()))),
        "node2"
    );
    let c = json!({"HostConfig": {"VolumesFrom": ["data.1", "ghost"]}});
    let out = decide(input(Some("app.1"), c, three(), routes));
    assert_eq!(kind(&out), "unknown_container");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("container.HostConfig.VolumesFrom[1]"));
}

#[test]
fn mapping_5_pins_naming_different_servers_conflict_and_list_every_pin() {
    let routes = json!({"containers": {"data.1": route("data.1", "node2", json!({}))}, "volumes": {"pg": "node1"}});
    let c = json!({"Env": ["VIKING_SERVER=node3"], "HostConfig": {"Binds": ["pg:/pg"], "VolumesFrom": ["data.1"]}});
    let out = decide(input(Some("app.1"), c, three(), routes));
    assert_eq!(kind(&out), "conflicting_pins");
    let msg = out["error"]["message"].as_str().unwrap();
    for part in [
        "VIKING_SERVER -> node3",
        "volume pg -> node1",
        "volumes_from data.1 -> node2",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
}

#[test]
fn mapping_5_a_pin_to_a_server_outside_the_inventory_is_unavailable() {
    let c = json!({"HostConfig": {"Binds": ["pg:/pg"]}});
    let out = decide(input(
        Some("db.1"),
        c,
        three(),
        json!({"volumes": {"pg": "gone"}}),
    ));
    assert_eq!(kind(&out), "pinned_server_unavailable");
    assert!(out["error"]["message"].as_str().unwrap().contains("gone"));
}

// --- Naming ----------------------------------------------------------------

#[test]
fn naming_service_id_and_name_are_appended_unless_set() {
    let out = decide(input(
        Some("/appserver.3453"),
        json!({"Env": ["A=1"]}),
        three(),
        json!({}),
    ));
    assert_eq!(
        env(&out),
        ["A=1", "SERVICE_ID=appserver.3453", "SERVICE_NAME=appserver"]
    );
    assert_eq!(out["route"]["name"], "appserver.3453");
    assert_eq!(out["route"]["service"], "appserver");
    let out = decide(input(
        Some("solo"),
        json!({"Env": ["SERVICE_NAME=mine"]}),
        three(),
        json!({}),
    ));
    assert_eq!(env(&out), ["SERVICE_NAME=mine", "SERVICE_ID=solo"]);
}

#[test]
fn naming_an_invalid_name_is_invalid_name() {
    for bad in ["a", "-web", "my app", "web/1"] {
        assert_eq!(
            kind(&decide(input(Some(bad), json!({}), three(), json!({})))),
            "invalid_name",
            "{bad}"
        );
    }
}

#[test]
fn naming_a_live_route_with_the_same_name_is_name_in_use() {
    let routes = json!({"containers": {"web.1": route("web.1", "node1", json!({}))}});
    assert_eq!(
        kind(&decide(input(
            Some("web.1"),
            json!({}),
            three(),
            routes.clone()
        ))),
        "name_in_use"
    );
    let mut removed = routes.clone();
    removed["containers"]["web.1"]["state"] = json!("removed");
    assert!(decide(input(Some("web.1"), json!({}), three(), removed))
        .get("server")
        .is_some());
}

// --- Links -----------------------------------------------------------------

fn auth_routes() -> Value {
    let mut a1 = route("auth.1", "node2", json!({"80/tcp": 20001}));
    a1["env"] = json!(["PASSWORD=x", "PATH=/bin"]);
    let a2 = route("auth.2", "node3", json!({"80/tcp": 20007}));
    json!({"containers": {"auth.1": a1, "auth.2": a2}})
}

#[test]
fn links_1_more_than_one_colon_is_invalid_request() {
    let c = json!({"HostConfig": {"Links": ["auth", "a:b:c"]}});
    let out = decide(input(Some("app.1"), c, three(), auth_routes()));
    assert_eq!(kind(&out), "invalid_request");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("container.HostConfig.Links[1]"));
}

#[test]
fn links_2_an_exact_live_container_wins_over_a_group() {
    let c = json!({"HostConfig": {"Links": ["/auth.2:/app.1/db"]}});
    let out = decide(input(Some("app.1"), c, three(), auth_routes()));
    assert!(env(&out).contains(&"DB_PORT=tcp://10.0.0.3:20007"));
    assert!(env(&out).contains(&"DB_NAME=/app.1/db"));
    assert!(!env(&out).iter().any(|e| e.starts_with("DB_MEMBERS")));
}

#[test]
fn links_2_an_unknown_target_is_unknown_link() {
    let c = json!({"HostConfig": {"Links": ["nobody:x"]}});
    let out = decide(input(Some("app.1"), c, three(), auth_routes()));
    assert_eq!(kind(&out), "unknown_link");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("container.HostConfig.Links[0]"));
}

#[test]
fn links_3_a_group_points_at_members_pid_mod_len() {
    let c = json!({"HostConfig": {"Links": ["auth"]}});
    let one = decide(input(Some("myapp.1"), c.clone(), three(), auth_routes()));
    let two = decide(input(Some("myapp.2"), c.clone(), three(), auth_routes()));
    let plain = decide(input(Some("myapp"), c, three(), auth_routes()));
    assert!(
        env(&one).contains(&"AUTH_PORT=tcp://10.0.0.3:20007"),
        "1 % 2 = auth.2"
    );
    assert!(
        env(&two).contains(&"AUTH_PORT=tcp://10.0.0.2:20001"),
        "2 % 2 = auth.1"
    );
    assert!(
        env(&plain).contains(&"AUTH_PORT=tcp://10.0.0.2:20001"),
        "no pid is 0"
    );
}

#[test]
fn links_4_variables_use_the_server_address_and_published_port() {
    let c = json!({"Env": ["A=1"], "HostConfig": {"Links": ["auth.1:auth"]}});
    let out = decide(input(Some("myapp.1"), c, three(), auth_routes()));
    assert_eq!(
        out["links_env"],
        json!([
            "AUTH_PORT=tcp://10.0.0.2:20001",
            "AUTH_PORT_80_TCP=tcp://10.0.0.2:20001",
            "AUTH_PORT_80_TCP_ADDR=10.0.0.2",
            "AUTH_PORT_80_TCP_PORT=20001",
            "AUTH_PORT_80_TCP_PROTO=tcp",
            "AUTH_NAME=/myapp.1/auth",
            "AUTH_ENV_PASSWORD=x"
        ])
    );
}

#[test]
fn links_5_a_group_gets_members_and_endpoints() {
    let c = json!({"HostConfig": {"Links": ["auth:login-svc"]}});
    let out = decide(input(Some("myapp.2"), c, three(), auth_routes()));
    let e = env(&out);
    assert!(e.contains(&"LOGIN_SVC_MEMBERS=auth.1,auth.2"), "{e:?}");
    assert!(
        e.contains(&"LOGIN_SVC_PORT_80_TCP_ENDPOINTS=tcp://10.0.0.2:20001,tcp://10.0.0.3:20007")
    );
    assert!(e.contains(&"LOGIN_SVC_NAME=/myapp.2/login-svc"));
}

#[test]
fn links_6_user_keys_win_and_links_leave_the_body() {
    let c =
        json!({"Env": ["AUTH_PORT=mine"], "HostConfig": {"Links": ["auth.1:auth"], "Memory": 0}});
    let out = decide(input(Some("myapp.1"), c, three(), auth_routes()));
    let e = env(&out);
    assert_eq!(e.iter().filter(|x| x.starts_with("AUTH_PORT=")).count(), 1);
    assert_eq!(e[0], "AUTH_PORT=mine");
    assert!(!out["links_env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x.as_str().unwrap().starts_with("AUTH_PORT=")));
    assert_eq!(out["container"]["HostConfig"], json!({"Memory": 0}));
}

// --- Output ----------------------------------------------------------------

#[test]
fn output_route_env_is_user_env_then_image_env() {
    let mut i = input(
        Some("a.1"),
        json!({"Env": ["A=1", "PATH=/mine"]}),
        three(),
        json!({}),
    );
    i["image"] = json!({"Config": {"Env": ["PATH=/bin", "LANG=C"]}});
    let out = decide(i);
    assert_eq!(out["route"]["env"], json!(["A=1", "PATH=/mine", "LANG=C"]));
    assert_eq!(out["route"]["state"], "live");
}

#[test]
fn output_route_is_null_for_an_unnamed_container() {
    let out = decide(input(None, json!({}), three(), json!({})));
    assert_eq!(out["route"], Value::Null);
    assert_eq!(out["server"]["docker"], "tcp://10.0.0.1:2375");
}

#[test]
fn output_unknown_fields_pass_through_untouched() {
    let c = json!({"Zeta": {"deep": [1, 2.5, null, 18446744073709551615u64]}, "Alpha": "x",
                   "HostConfig": {"Custom": true, "Links": null}});
    let out = decide(input(None, c, three(), json!({})));
    let text = serde_json::to_string(&out["container"]).unwrap();
    assert_eq!(
        text,
        r#"{"Zeta":{"deep":[1,2.5,null,18446744073709551615]},"Alpha":"x","HostConfig":{"Custom":true}}"#
    );
}

// --- Bad input -------------------------------------------------------------

fn bad(input: &str) -> (String, String) {
    let out: Value = serde_json::from_str(&flocker_core::decide_json(input.as_bytes())).unwrap();
    (
        out["error"]["kind"].as_str().unwrap_or("none").to_string(),
        out["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn input_bad_cases_name_the_field_by_its_json_path() {
    let inv = r#"[{"hostname":"n","address":"a"}]"#;
    let cases = [
        (
            "{not json".to_string(),
            "invalid_request",
            "input is not valid JSON",
        ),
        (
            "[1,2]".to_string(),
            "invalid_request",
            ": expected an object",
        ),
        (
            r#"{"container":{}}"#.to_string(),
            "invalid_request",
            "inventory: is required",
        ),
        (
            format!(r#"{{"inventory":{inv}}}"#),
            "invalid_request",
            "container: is required",
        ),
        (
            format!(r#"{{"container":{{"Env":"A"}},"inventory":{inv}}}"#),
            "invalid_request",
            "container.Env: expected an array",
        ),
        (
            r#"{"container":{},"inventory":[{"hostname":"n"}]}"#.to_string(),
            "invalid_request",
            "inventory[0].address: is required",
        ),
        (
            format!(r#"{{"container":{{"ExposedPorts":{{"http/tcp":{{}}}}}},"inventory":{inv}}}"#),
            "invalid_request",
            r#"container.ExposedPorts["http/tcp"]"#,
        ),
        (
            format!(r#"{{"container":{{"ExposedPorts":{{"70000/tcp":{{}}}}}},"inventory":{inv}}}"#),
            "invalid_request",
            r#"container.ExposedPorts["70000/tcp"]"#,
        ),
        (
            format!(
                r#"{{"container":{{"HostConfig":{{"Links":["a","b:c:d"]}}}},"inventory":{inv}}}"#
            ),
            "invalid_request",
            "container.HostConfig.Links[1]",
        ),
        (
            format!(r#"{{"name":"bad name","container":{{}},"inventory":{inv}}}"#),
            "invalid_name",
            "bad name",
        ),
        (
            format!(
                r#"{{"name":"ok.1","container":{{}},"inventory":{inv},"routes":{{"containers":{{"x":{{"server":5}}}}}}}}"#
            ),
            "invalid_request",
            "routes.containers.x.server",
        ),
    ];
    for (input, want_kind, want_msg) in cases {
        let (k, m) = bad(&input);
        assert_eq!(k, want_kind, "{input} -> {m}");
        assert!(m.contains(want_msg), "{input}: {m:?} lacks {want_msg:?}");
    }
}

#[test]
fn input_deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(bad(&deep).0, "invalid_request");
    let body = format!(
        r#"{{"container":{{"X":{}1{}}},"inventory":[]}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_eq!(bad(&body).0, "invalid_request");
}
