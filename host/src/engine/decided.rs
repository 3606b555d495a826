//! [`Decided`]: one decision in the shape both engines give.

use flocker_core::{Decision, DecisionError, Route};
use serde_json::Value;

use super::EngineError;

/// One decision: the SPEC output and the route to save.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The SPEC section 4 output: a decision or `{"error": {...}}`.
    pub output: Value,
    /// The route a successful, named decision saves.
    pub route: Option<Route>,
    /// The `error.kind` when the output is an error.
    pub error_kind: Option<String>,
}

impl Decided {
    /// From the native engine's typed result.
    pub fn from_result(result: &Result<Decision, DecisionError>) -> Decided {
        match result {
            Ok(d) => Decided {
                output: d.to_value(),
                route: d.route.clone(),
                error_kind: None,
            },
            Err(e) => Decided {
                output: e.to_value(),
                route: None,
                error_kind: Some(e.kind().to_string()),
            },
        }
    }

    /// From SPEC output JSON text (what the WASM module returns).
    pub fn from_output(text: &str) -> Result<Decided, EngineError> {
        let bad = |what: String| EngineError::BadOutput { what };
        let output: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if let Some(err) = output.get("error") {
            let kind = err
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("invalid_request")
                .to_string();
            return Ok(Decided {
                output,
                route: None,
                error_kind: Some(kind),
            });
        }
        let route = match output.get("route") {
            None | Some(Value::Null) => None,
            Some(r) => Some(
                Route::from_value(r, None, "route")
                    .map_err(|e| bad(format!("a bad route: {e}")))?,
            ),
        };
        if output.get("server").is_none() {
            return Err(bad("neither a decision nor an error".into()));
        }
        Ok(Decided {
            output,
            route,
            error_kind: None,
        })
    }

    /// Whether the output is an `{"error": ...}` decision.
    pub fn is_error(&self) -> bool {
        self.error_kind.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_output_is_read_back_into_a_route() {
        let ok = Decided::from_output(
            r#"{"server":{"hostname":"n"},"route":{"name":"a.1","server":"n","ports":{"80/tcp":20000}}}"#,
        )
        .unwrap();
        assert_eq!(ok.route.unwrap().ports[0].1, 20000);
        let err =
            Decided::from_output(r#"{"error":{"kind":"name_in_use","message":"x"}}"#).unwrap();
        assert_eq!(err.error_kind.as_deref(), Some("name_in_use"));
        for bad in ["nope", "{}", r#"{"server":{},"route":{"server":1}}"#] {
            assert!(
                matches!(
                    Decided::from_output(bad),
                    Err(EngineError::BadOutput { .. })
                ),
                "{bad}"
            );
        }
    }
}
