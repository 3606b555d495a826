//! The one-shot input (SPEC section 2: the request beside `inventory` and
//! `routes`) read straight into the engine's records, without a
//! `serde_json::Value` of the whole cluster: at 10^4 routes building and
//! dropping that tree was more than half of a decision (docs/PERFORMANCE.md,
//! "Issue 12"). Only `name`, `container` and `image` become `Value`s, since
//! the create body passes through byte for byte.
//!
//! This reader only has to be right when it succeeds. Whatever it does not
//! take exactly as the `Value` reader does (a wrong type, a repeated key, an
//! array where an object belongs, a record the checks refuse) makes it give
//! up, and [`crate::decide_json`] reads the input again the `Value` way,
//! which names the error with its JSON path. So both give the same bytes,
//! and the property tests and the `decide_json` fuzz target hold them to it.
//!
//! What keeps it exact:
//! - every record is read by a visitor that takes only a JSON object (a
//!   derived struct would also take an array of its fields);
//! - a key seen twice gives up, where `Value` would keep the last;
//! - fields nobody reads are walked as values ([`Skip`]) rather than
//!   skipped, so they are held to the same UTF-8, escape and nesting
//!   checks as the `Value` reader's;
//! - numbers are read as `u64`, which under serde_json's
//!   `arbitrary_precision` takes exactly the texts `Value::as_u64` takes.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cluster::Cluster;
use crate::port::Port;
use crate::route::{host_port, Parts, Route};
use crate::server::{self, Fields, Server, DEFAULT_PORT_RANGE};

/// The request (`name`, `container`, `image`, as they came) and the
/// cluster of `input`, or `None` when only the `Value` reader can say what
/// the input is.
pub(crate) fn read(input: &[u8]) -> Option<(Value, Cluster)> {
    if input.len() > crate::MAX_INPUT_BYTES {
        return None;
    }
    // One check of the whole input instead of one per string: the `Value`
    // reader refuses any input that is not UTF-8.
    let text = std::str::from_utf8(input).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    // A top-level `null` is not an input: the `Value` reader refuses it.
    let snapshot = Object(Input).deserialize(&mut de).ok()??;
    de.end().ok()?;
    let Snapshot {
        request,
        inventory,
        routes,
    } = snapshot;
    let mut cluster = Cluster::new();
    cluster.snapshot_inventory(inventory?).ok()?;
    let Routes {
        containers,
        volumes,
        claimed,
    } = routes.unwrap_or_default();
    cluster.snapshot_routes(containers).then_some(())?;
    for (volume, server) in volumes {
        cluster.snapshot_volume(&volume, &server).then_some(())?;
    }
    let mut claimed_on: BTreeSet<&str> = BTreeSet::new();
    for (hostname, ports) in &claimed {
        claimed_on.insert(hostname).then_some(())?;
        for p in ports {
            cluster.claim_port(hostname, host_port(*p)?);
        }
    }
    Some((Value::Object(request), cluster))
}

struct Snapshot<'a> {
    request: Map<String, Value>,
    inventory: Option<Vec<Server>>,
    routes: Option<Routes<'a>>,
}

#[derive(Default)]
struct Routes<'a> {
    containers: Vec<Route>,
    volumes: Vec<(Text<'a>, Text<'a>)>,
    claimed: Vec<(Text<'a>, Vec<u64>)>,
}

/// Why the reader gave up; never shown, since the `Value` reader then runs.
fn give_up<E: de::Error>() -> E {
    E::custom("not read the one-shot way")
}

/// Keys seen so far in one object, one bit each, so that a repeated key
/// gives up.
struct Seen(u32);

impl Seen {
    fn first<E: de::Error>(&mut self, bit: u32) -> Result<(), E> {
        if self.0 & bit != 0 {
            return Err(give_up());
        }
        self.0 |= bit;
        Ok(())
    }
}

/// A JSON string, borrowed from the input unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read and dropped. Unlike serde's `IgnoredAny`, which
/// serde_json skips over without decoding strings or counting depth, this
/// holds an unread field to what the `Value` reader checks.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// A reader of one JSON object: `read` sees its entries. Only objects are
/// taken: a derived struct would also take an array of its fields.
trait ObjectSeed<'de>: Sized {
    type Out;
    const WHAT: &'static str;
    fn read<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
}

/// An [`ObjectSeed`] as serde drives it, `null` reading as absent.
struct Object<S>(S);

impl<'de, S: ObjectSeed<'de>> DeserializeSeed<'de> for Object<S> {
    type Value = Option<S::Out>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: ObjectSeed<'de>> Visitor<'de> for Object<S> {
    type Value = Option<S::Out>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(S::WHAT)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(Present(self.0))
    }
}

struct Present<S>(S);

impl<'de, S: ObjectSeed<'de>> Visitor<'de> for Present<S> {
    type Value = Option<S::Out>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(S::WHAT)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.read(map).map(Some)
    }
}

/// The top level: the request's fields kept as `Value`s, the rest read
/// into records.
struct Input;

impl<'de> ObjectSeed<'de> for Input {
    type Out = Snapshot<'de>;
    const WHAT: &'static str = "the decision input";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Snapshot<'de>, A::Error> {
        let mut seen = Seen(0);
        let mut request = Map::new();
        let (mut inventory, mut routes) = (None, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                k @ ("name" | "container" | "image") => {
                    seen.first(match k {
                        "name" => 1,
                        "container" => 2,
                        _ => 4,
                    })?;
                    request.insert(k.to_string(), map.next_value::<Value>()?);
                }
                "inventory" => {
                    seen.first(8)?;
                    inventory = map.next_value_seed(Inventory)?;
                }
                "routes" => {
                    seen.first(16)?;
                    routes = map.next_value_seed(Object(RoutesSeed))?;
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Snapshot {
            request,
            inventory,
            routes,
        })
    }
}

/// `inventory`: an array of server records (`null` as absent).
struct Inventory;

impl<'de> DeserializeSeed<'de> for Inventory {
    type Value = Option<Vec<Server>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Inventory {
    type Value = Option<Vec<Server>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of servers")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut servers = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        // A `null` entry is not a record: the `Value` reader refuses it.
        while let Some(s) = seq.next_element_seed(Object(ServerSeed))? {
            servers.push(s.ok_or_else(give_up)?);
        }
        Ok(Some(servers))
    }
}

/// One inventory record, checked as [`Server::from_value`] checks it.
struct ServerSeed;

impl<'de> ObjectSeed<'de> for ServerSeed {
    type Out = Server;
    const WHAT: &'static str = "a server record";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Server, A::Error> {
        let mut seen = Seen(0);
        let (mut hostname, mut address, mut docker) = (None, None, None);
        let mut tags: Option<Vec<Text<'de>>> = None;
        let mut range: Option<Vec<u64>> = None;
        let mut f = Fields {
            port_range: DEFAULT_PORT_RANGE,
            ..Fields::default()
        };
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "hostname" => {
                    seen.first(1)?;
                    hostname = map.next_value::<Option<Text<'de>>>()?;
                }
                "address" => {
                    seen.first(2)?;
                    address = map.next_value::<Option<Text<'de>>>()?;
                }
                "docker" => {
                    seen.first(4)?;
                    docker = map.next_value::<Option<Text<'de>>>()?;
                }
                "tags" => {
                    seen.first(8)?;
                    tags = map.next_value()?;
                }
                "reserved" => {
                    seen.first(16)?;
                    f.reserved = map.next_value()?;
                }
                "full" => {
                    seen.first(32)?;
                    f.full = map.next_value()?;
                }
                "down" => {
                    seen.first(64)?;
                    f.down = map.next_value()?;
                }
                "max_containers" => {
                    seen.first(128)?;
                    f.max_containers = map.next_value()?;
                }
                "containers" => {
                    seen.first(256)?;
                    f.containers = map.next_value()?;
                }
                "port_range" => {
                    seen.first(512)?;
                    range = map.next_value()?;
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        let (Some(hostname), Some(address)) = (hostname, address) else {
            return Err(give_up());
        };
        server::non_empty(&hostname, "", "hostname")
            .and_then(|_| server::non_empty(&address, "", "address"))
            .map_err(|_| give_up())?;
        if let Some(items) = range {
            let items: Vec<Option<u64>> = items.into_iter().map(Some).collect();
            f.port_range = server::port_range(&items, "").map_err(|_| give_up())?;
        }
        let tags = tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0.into_owned())
            .collect();
        Ok(Server::assemble(
            &hostname,
            &address,
            docker.as_deref(),
            tags,
            f,
        ))
    }
}

/// `routes`: `containers`, `volumes` and `claimed_ports`.
struct RoutesSeed;

impl<'de> ObjectSeed<'de> for RoutesSeed {
    type Out = Routes<'de>;
    const WHAT: &'static str = "the routes";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Routes<'de>, A::Error> {
        let mut seen = Seen(0);
        let mut routes = Routes::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "containers" => {
                    seen.first(1)?;
                    routes.containers =
                        map.next_value_seed(Object(Containers))?.unwrap_or_default();
                }
                "volumes" => {
                    seen.first(2)?;
                    routes.volumes = map
                        .next_value_seed(Object(Pairs::new()))?
                        .unwrap_or_default();
                }
                "claimed_ports" => {
                    seen.first(4)?;
                    routes.claimed = map
                        .next_value_seed(Object(Pairs::new()))?
                        .unwrap_or_default();
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(routes)
    }
}

/// An object's entries in order, each value a `T`. Repeated keys are left
/// for the caller to find.
struct Pairs<T>(std::marker::PhantomData<T>);

impl<T> Pairs<T> {
    fn new() -> Self {
        Pairs(std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> ObjectSeed<'de> for Pairs<T> {
    type Out = Vec<(Text<'de>, T)>;
    const WHAT: &'static str = "an object";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = map.next_entry::<Text<'de>, T>()? {
            out.push(entry);
        }
        Ok(out)
    }
}

/// A route's `ports`: container port -> host port, in the record's order.
/// A port named twice gives up, even as `80` and `80/tcp` (two keys the
/// `Value` reader keeps both of), since for one key written twice it keeps
/// only the last.
struct Ports;

impl<'de> ObjectSeed<'de> for Ports {
    type Out = Vec<(Port, u16)>;
    const WHAT: &'static str = "the route's ports";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut out: Vec<(Port, u16)> = Vec::new();
        while let Some((key, host)) = map.next_entry::<Text<'de>, u64>()? {
            let port = Port::parse(&key, "").map_err(|_| give_up())?;
            if out.iter().any(|(p, _)| *p == port) {
                return Err(give_up());
            }
            out.push((port, host_port(host).ok_or_else(give_up)?));
        }
        Ok(out)
    }
}

/// `routes.containers`: name -> route record.
struct Containers;

impl<'de> ObjectSeed<'de> for Containers {
    type Out = Vec<Route>;
    const WHAT: &'static str = "the route records";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<Text<'de>>()? {
            // A `null` record is not a record: the `Value` reader refuses it.
            let route = map
                .next_value_seed(Object(RouteSeed { key: &key }))?
                .ok_or_else(give_up)?;
            let mut route = route;
            key.clone_into(&mut route.name);
            out.push(route);
        }
        Ok(out)
    }
}

/// One route record stored under `key`, checked as [`Route::from_value`]
/// checks it.
struct RouteSeed<'k> {
    key: &'k str,
}

impl<'de> ObjectSeed<'de> for RouteSeed<'_> {
    type Out = Route;
    const WHAT: &'static str = "a route record";

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Route, A::Error> {
        let mut seen = Seen(0);
        let (mut name, mut service, mut server, mut address, mut state) =
            (None, None, None, None, None);
        let mut ports: Option<Vec<(Port, u16)>> = None;
        let mut host_ports: Option<Vec<u64>> = None;
        let (mut env, mut volumes): (Option<Vec<Text<'de>>>, Option<Vec<Text<'de>>>) = (None, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "name" => {
                    seen.first(1)?;
                    name = map.next_value::<Option<Text<'de>>>()?;
                }
                "service" => {
                    seen.first(2)?;
                    service = map.next_value::<Option<Text<'de>>>()?;
                }
                "server" => {
                    seen.first(4)?;
                    server = map.next_value::<Option<Text<'de>>>()?;
                }
                "address" => {
                    seen.first(8)?;
                    address = map.next_value::<Option<Text<'de>>>()?;
                }
                "ports" => {
                    seen.first(16)?;
                    ports = map.next_value_seed(Object(Ports))?;
                }
                "host_ports" => {
                    seen.first(32)?;
                    host_ports = map.next_value()?;
                }
                "env" => {
                    seen.first(64)?;
                    env = map.next_value()?;
                }
                "volumes" => {
                    seen.first(128)?;
                    volumes = map.next_value()?;
                }
                "state" => {
                    seen.first(256)?;
                    state = map.next_value::<Option<Text<'de>>>()?;
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        let server = server.ok_or_else(give_up)?;
        let host_ports = host_ports
            .unwrap_or_default()
            .into_iter()
            .map(|hp| host_port(hp).ok_or_else(give_up))
            .collect::<Result<Vec<u16>, A::Error>>()?;
        let owned = |list: Option<Vec<Text<'de>>>| -> Vec<String> {
            list.unwrap_or_default()
                .into_iter()
                .map(|t| t.0.into_owned())
                .collect()
        };
        Ok(Route::assemble(Parts {
            name: name.as_deref().unwrap_or(self.key),
            service: service.as_deref(),
            server: &server,
            address: address.as_deref().unwrap_or_default(),
            ports: ports.unwrap_or_default(),
            host_ports,
            env: owned(env),
            volumes: owned(volumes),
            state: state.as_deref(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decide, parse, render};

    /// What `decide_json` answered before this reader: every input read
    /// into a `Value`.
    fn by_value(input: &[u8]) -> String {
        match parse(input) {
            Ok(v) => render(&decide(&v)),
            Err(e) => render(&Err(e)),
        }
    }

    /// `input` with `{SERVER}` and `{ROUTE}` filled in.
    fn input(server: &str, route: &str, extra: &str) -> String {
        format!(
            r#"{{"name": "web.2", "container": {{"Image": "nginx", "HostConfig": {{"Links": ["db.1"]}}}},
                "inventory": [{{"hostname": "n1", "address": "10.0.0.1"}}, {server}],
                "routes": {{"containers": {{"db.1": {route}}}, "volumes": {{"pg": "n1"}}}}{extra}}}"#
        )
    }

    const SERVER: &str =
        r#"{"hostname": "n2", "address": "10.0.0.2", "tags": ["ssd"], "containers": 3}"#;
    const ROUTE: &str =
        r#"{"server": "n2", "ports": {"5432/tcp": 20000}, "env": ["A=1"], "state": "live"}"#;

    /// Whether the fast reader takes `text`, and that the answer is the
    /// `Value` reader's either way.
    fn taken(text: &str) -> bool {
        assert_eq!(
            crate::decide_json(text.as_bytes()),
            by_value(text.as_bytes()),
            "{text}"
        );
        read(text.as_bytes()).is_some()
    }

    #[test]
    fn plain_inputs_are_read_the_fast_way_with_the_same_answer() {
        assert!(taken(&input(SERVER, ROUTE, "")));
        // Escapes make owned strings; the answer is still the same.
        let escaped = SERVER.replace("\"n2\"", "\"n\\u0032\"");
        assert!(taken(&input(&escaped, ROUTE, "")));
        // `80` and `80/tcp` are two keys naming one port: the `Value`
        // reader keeps both and the first in link order wins. This reader
        // leaves it to that one.
        let twice = ROUTE.replace(
            "\"5432/tcp\": 20000",
            "\"5432\": 20001, \"5432/tcp\": 20000",
        );
        assert!(!taken(&input(SERVER, &twice, "")));
        // Nulls read as absent; unknown fields are walked and dropped.
        let nulls = ROUTE.replace(
            "\"env\"",
            "\"address\": null, \"extra\": {\"a\": [1, 2.5, true]}, \"env\"",
        );
        assert!(taken(&input(SERVER, &nulls, ", \"routes2\": null")));
        // A repeated key inside the create body is the `Value` parser's.
        let body = input(SERVER, ROUTE, "")
            .replace("\"Image\": \"nginx\"", "\"Image\": \"a\", \"Image\": \"b\"");
        assert!(taken(&body));
    }

    #[test]
    fn what_only_the_value_reader_can_judge_is_left_to_it() {
        let cases = [
            // A repeated key: `Value` keeps the last.
            input(
                SERVER,
                &ROUTE.replace(
                    "\"state\": \"live\"",
                    "\"state\": \"x\", \"state\": \"live\"",
                ),
                "",
            ),
            input(SERVER, ROUTE, ", \"inventory\": []"),
            // The link's `DB_PORT` shows which of the two was read.
            input(
                SERVER,
                &ROUTE.replace(
                    "\"5432/tcp\": 20000",
                    "\"5432/tcp\": 20001, \"5432/tcp\": 20000",
                ),
                "",
            ),
            input(SERVER, ROUTE, "").replace(
                "\"volumes\": {\"pg\": \"n1\"}",
                "\"volumes\": {\"pg\": \"n1\", \"pg\": \"n2\"}",
            ),
            input(SERVER, ROUTE, "")
                .replace("\"db.1\": ", "\"db.1\": {\"server\": \"n1\"}, \"db.1\": "),
            // An array where a record belongs: a derived struct takes it.
            input(r#"["n2", "10.0.0.2"]"#, ROUTE, ""),
            input(SERVER, r#"["db.1", "db", "n2"]"#, ""),
            input("null", ROUTE, ""),
            input(SERVER, "null", ""),
            // Numbers `as_u64` refuses.
            input(&SERVER.replace(": 3", ": -0"), ROUTE, ""),
            input(&SERVER.replace(": 3", ": 3.0"), ROUTE, ""),
            input(SERVER, &ROUTE.replace("20000", "2e4"), ""),
            input(SERVER, &ROUTE.replace("20000", "70000"), ""),
            // Unread fields the `Value` parser refuses.
            input(SERVER, ROUTE, ", \"x\": \"\\ud800\""),
            input(
                SERVER,
                ROUTE,
                &format!(", \"x\": {}{}", "[".repeat(200), "]".repeat(200)),
            ),
            // Records the checks refuse.
            input(&SERVER.replace("\"n2\"", "\"\""), ROUTE, ""),
            input(r#"{"hostname": "n1", "address": "10.0.0.9"}"#, ROUTE, ""),
            input(
                &SERVER.replace("\"containers\"", "\"port_range\": [3, 2], \"c\""),
                ROUTE,
                "",
            ),
            input(SERVER, &ROUTE.replace("5432/tcp", "5432/xyz"), ""),
            input(SERVER, ROUTE, "").replace(
                "\"routes\": {",
                "\"routes\": {\"claimed_ports\": {\"n1\": [1], \"n1\": [2]}, ",
            ),
            "[]".to_string(),
            "null".to_string(),
            format!("{} x", input(SERVER, ROUTE, "")),
        ];
        for text in cases {
            assert!(!taken(&text), "the fast reader took {text}");
        }
        let mut bad_utf8 = input(SERVER, ROUTE, ", \"x\": \"?\"").into_bytes();
        let at = bad_utf8.iter().rposition(|b| *b == b'?').unwrap_or(0);
        bad_utf8[at] = 0xff;
        assert_eq!(crate::decide_json(&bad_utf8), by_value(&bad_utf8));
        assert!(read(&bad_utf8).is_none());
    }
}
