//! Which Docker Engine API call a request is, and so what the proxy does
//! with it (docs/PROXY.md has the table): answer it, decide it, route it to
//! the server that holds its object, combine every server's answer, or
//! refuse it.
//!
//! Paths may start with a version prefix (`/v1.41/...`); it is kept and
//! passed on, since the client negotiated a version every server supports.

use hyper::Method;

/// A classified call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Version,
    Info,
    /// `POST /containers/create`.
    Create,
    /// `GET /containers/json`.
    ListContainers,
    /// `POST /containers/{id}/exec`: routed, and the exec id remembered.
    ExecCreate(String),
    /// `DELETE /containers/{id}`: routed, and its route removed.
    Delete(String),
    /// `POST /containers/{id}/rename`: routed, and its route renamed.
    Rename(String),
    /// Any other call on one container: routed to its server.
    Container {
        id: String,
        action: String,
    },
    /// `/exec/{id}/...`: routed by exec id.
    Exec {
        id: String,
        action: String,
    },
    /// `GET /images/json`.
    ListImages,
    /// `POST /images/create` (pull).
    Pull,
    /// `GET /images/{name}/json|history|get`: the first server that has it.
    ImageRead {
        name: String,
    },
    /// `DELETE /images/{name}`, `POST /images/{name}/tag`: every server
    /// that has it.
    ImageEveryServer {
        name: String,
    },
    /// `GET /events`.
    Events,
    /// `GET /networks/{id}`, `GET /volumes/{name}`, `/distribution/...`:
    /// the first server that answers 200, else its 404.
    FirstFound,
    /// `GET /networks`, `GET /volumes`: every server's list.
    ListNetworks,
    ListVolumes,
    /// `POST /auth`: any server.
    AnyServer,
    /// Outside the proxy's contract.
    Unsupported,
}

/// Whether the call streams (its headers may come late and its body never
/// ends by itself), so no header or body timeout applies.
pub fn is_stream(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Events | Endpoint::Pull => true,
        Endpoint::Container { action, .. } => matches!(
            action.as_str(),
            "attach" | "attach/ws" | "wait" | "logs" | "stats" | "export" | "archive"
        ),
        Endpoint::Exec { action, .. } => action == "start",
        Endpoint::ImageRead { .. } => false,
        _ => false,
    }
}

/// Splits `/vX.Y/rest` into (`/vX.Y`, `/rest`); no prefix gives ("", path).
pub fn split_version(path: &str) -> (&str, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        let numeric = !version.is_empty()
            && version.chars().all(|c| c.is_ascii_digit() || c == '.')
            && version.starts_with(|c: char| c.is_ascii_digit());
        if numeric {
            return (&path[..end + 2], &path[end + 2..]);
        }
    }
    ("", path)
}

/// Classifies `method` on `path` (without its version prefix).
pub fn classify(method: &Method, path: &str) -> Endpoint {
    let trimmed = path.trim_matches('/');
    let segs: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match segs.as_slice() {
        ["_ping"] if get => Endpoint::Ping,
        ["version"] if get => Endpoint::Version,
        ["info"] if get => Endpoint::Info,
        ["events"] if get => Endpoint::Events,
        ["auth"] if post => Endpoint::AnyServer,
        ["containers", "create"] if post => Endpoint::Create,
        ["containers", "json"] if get => Endpoint::ListContainers,
        ["containers", id] if method == Method::DELETE => Endpoint::Delete(id.to_string()),
        ["containers", id, "exec"] if post => Endpoint::ExecCreate(id.to_string()),
        ["containers", id, "rename"] if post => Endpoint::Rename(id.to_string()),
        ["containers", id, rest @ ..] if !rest.is_empty() && container_action(method, rest) => {
            Endpoint::Container {
                id: id.to_string(),
                action: rest.join("/"),
            }
        }
        ["exec", id, action] if matches!(*action, "start" | "json" | "resize") => Endpoint::Exec {
            id: id.to_string(),
            action: action.to_string(),
        },
        ["images", "json"] if get => Endpoint::ListImages,
        ["images", "create"] if post => Endpoint::Pull,
        ["images", name @ .., last]
            if get && !name.is_empty() && matches!(*last, "json" | "history" | "get") =>
        {
            Endpoint::ImageRead {
                name: name.join("/"),
            }
        }
        ["images", name @ ..] if method == Method::DELETE && !name.is_empty() => {
            Endpoint::ImageEveryServer {
                name: name.join("/"),
            }
        }
        ["images", name @ .., "tag"] if post && !name.is_empty() => Endpoint::ImageEveryServer {
            name: name.join("/"),
        },
        ["networks"] if get => Endpoint::ListNetworks,
        ["volumes"] if get => Endpoint::ListVolumes,
        ["networks", _] | ["volumes", _] if get => Endpoint::FirstFound,
        ["distribution", _, ..] if get => Endpoint::FirstFound,
        _ => Endpoint::Unsupported,
    }
}

/// The per-container calls that are routed (SPEC section 6, docs/PROXY.md).
fn container_action(method: &Method, rest: &[&str]) -> bool {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match rest {
        ["json" | "top" | "logs" | "stats" | "changes" | "export"] => get,
        ["archive"] => get || method == Method::PUT,
        ["start" | "stop" | "kill" | "restart" | "pause" | "unpause" | "update" | "resize"
        | "wait" | "attach"] => post,
        ["attach", "ws"] => get,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            ("/v1.41", "/containers/json")
        );
        assert_eq!(split_version("/_ping"), ("", "/_ping"));
        assert_eq!(split_version("/v1.41"), ("/v1.41", ""));
        assert_eq!(split_version("/volumes/x"), ("", "/volumes/x"));
    }

    #[test]
    fn calls() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(c(Method::HEAD, "/_ping"), Endpoint::Ping);
        assert_eq!(c(Method::POST, "/containers/create"), Endpoint::Create);
        assert_eq!(
            c(Method::DELETE, "/containers/auth.1"),
            Endpoint::Delete("auth.1".into())
        );
        assert_eq!(
            c(Method::POST, "/containers/abc/attach"),
            Endpoint::Container {
                id: "abc".into(),
                action: "attach".into()
            }
        );
        assert_eq!(
            c(Method::GET, "/images/localhost/auth:1/json"),
            Endpoint::ImageRead {
                name: "localhost/auth:1".into()
            }
        );
        assert_eq!(
            c(Method::POST, "/images/localhost/auth:1/tag"),
            Endpoint::ImageEveryServer {
                name: "localhost/auth:1".into()
            }
        );
        assert_eq!(c(Method::POST, "/build"), Endpoint::Unsupported);
        assert_eq!(c(Method::POST, "/volumes/create"), Endpoint::Unsupported);
        assert_eq!(c(Method::POST, "/containers/prune"), Endpoint::Unsupported);
        assert_eq!(c(Method::GET, "/swarm"), Endpoint::Unsupported);
        assert!(is_stream(&c(Method::POST, "/containers/x/wait")));
        assert!(!is_stream(&c(Method::POST, "/containers/x/start")));
    }
}
