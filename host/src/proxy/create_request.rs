//! The pure half of a proxied create (docs/PROXY.md, "Create"): reading
//! the client's body and `?name=`, the decision request built from them,
//! and the body and path sent on to the chosen server. No I/O here, so the
//! fuzz target `proxy_create` runs exactly what [`super::create`] runs.

use serde_json::{json, Value};

use super::error::ProxyError;
use super::forward::{query_param, with_query_param};

/// A create body as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateBody {
    /// The whole body: the decision rewrites it, so nothing is dropped.
    pub container: Value,
    /// `Image`, non-empty.
    pub image: String,
    /// `?name=` without Docker's leading `/`; `None` when not given or
    /// empty (the proxy then names the container itself, SPEC section 6).
    pub name: Option<String>,
}

/// Reads a create: a JSON object whose `Image` is a non-empty string;
/// anything else is a 400 naming what is wrong, as Docker answers it.
pub fn read(body: &[u8], query: Option<&str>) -> Result<CreateBody, ProxyError> {
    let container: Value = serde_json::from_slice(body)
        .map_err(|e| ProxyError::BadRequest(format!("the create body is not valid JSON: {e}")))?;
    let Some(object) = container.as_object() else {
        return Err(ProxyError::BadRequest(
            "the create body must be a JSON object".into(),
        ));
    };
    let image = match object.get("Image") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ProxyError::BadRequest("Image: is required".into()))
        }
        Some(_) => return Err(ProxyError::BadRequest("Image: expected a string".into())),
    };
    let name = query_param(query, "name")
        .filter(|n| !n.is_empty())
        .map(|n| n.trim_start_matches('/').to_string());
    Ok(CreateBody {
        container,
        image,
        name,
    })
}

/// The decision request (SPEC section 3): the body as `container`, the
/// image's config (from a server that has it, else null) as `image`.
pub fn decision_request(name: &str, container: &Value, image_config: Option<&Value>) -> Value {
    json!({"name": name, "container": container, "image": image_config})
}

/// The body sent to the chosen server: the decision's rewritten container.
pub fn rewritten_body(output: &Value) -> Result<Vec<u8>, ProxyError> {
    serde_json::to_vec(output.get("container").unwrap_or(&Value::Null))
        .map_err(|e| ProxyError::Backend(format!("cannot write the create body: {e}")))
}

/// The path sent to the chosen server: the client's query (platform...)
/// with `name` set to the decided name, whatever the client's said.
pub fn server_path(version: &str, query: Option<&str>, name: &str) -> String {
    let path = match query {
        Some(q) => format!("{version}/containers/create?{q}"),
        None => format!("{version}/containers/create"),
    };
    with_query_param(&path, "name", name)
}

/// A name Docker accepts (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`) for an unnamed
/// create of `image`: `<image base>_<stamp><n>` has no dot, so each unnamed
/// container is its own service and never joins a group a `--link` could
/// name. `stamp` (the time) keeps names apart across restarts and proxies,
/// `n` (a counter) within one.
pub fn fresh_name(image: &str, stamp: u64, n: u64) -> String {
    let base: String = image
        .rsplit('/')
        .next()
        .unwrap_or(image)
        .split([':', '@'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = if base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base
    } else {
        format!("c{base}")
    };
    format!("{base}_{:x}{n:x}", stamp & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(body: &str) -> String {
        match read(body.as_bytes(), None) {
            Err(ProxyError::BadRequest(m)) => m,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn a_create_names_what_is_wrong() {
        assert!(bad("{").starts_with("the create body is not valid JSON"));
        assert_eq!(bad("[]"), "the create body must be a JSON object");
        assert_eq!(bad("{}"), "Image: is required");
        assert_eq!(bad(r#"{"Image":""}"#), "Image: is required");
        assert_eq!(bad(r#"{"Image":7}"#), "Image: expected a string");
    }

    #[test]
    fn the_name_loses_its_slash_and_an_empty_one_is_none() {
        let body = br#"{"Image":"busybox"}"#;
        let named = read(body, Some("name=%2Fweb.1&platform=linux")).unwrap();
        assert_eq!(named.name.as_deref(), Some("web.1"));
        assert_eq!(named.image, "busybox");
        assert_eq!(read(body, Some("name=")).unwrap().name, None);
        assert_eq!(read(body, None).unwrap().name, None);
    }

    #[test]
    fn the_server_path_sets_the_name() {
        assert_eq!(
            server_path("/v1.41", Some("name=x&platform=linux"), "auth.1"),
            "/v1.41/containers/create?platform=linux&name=auth.1"
        );
        assert_eq!(server_path("", None, "a_1"), "/containers/create?name=a_1");
    }

    #[test]
    fn fresh_names_are_docker_names_without_a_dot() {
        assert_eq!(fresh_name("localhost/busybox:full", 0x10, 2), "busybox_102");
        assert_eq!(fresh_name("_x", 1, 0), "c_x_10");
        assert_eq!(fresh_name("a@sha256:00", 0, 0), "a_00");
    }
}
