//! Bytes as a stored record of SPEC section 5 (the first byte picks the
//! kind), through the readers both stores use (`flocker_host::store::
//! records`, `PolicyRecord`): a record reads or is `Corrupt`
//! naming its key, never a panic; one that reads writes back to text that
//! reads as the same record.
#![no_main]

use flocker_host::store::records::{
    read_answer, read_change, read_json, read_route, read_server, read_volume_claim,
};
use flocker_host::store::{PolicyRecord, StoreError};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "/fuzz/key";

fn corrupt<T: std::fmt::Debug>(r: &Result<T, StoreError>) {
    if let Err(e) = r {
        match e {
            StoreError::Corrupt { key, .. } => assert_eq!(key, KEY),
            other => panic!("a bad record is Corrupt, not {other}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, record)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(record) else {
        // Both stores read the bytes as UTF-8 first; a policy record is
        // the one reader that takes bytes.
        let r = PolicyRecord::from_text(KEY, record);
        corrupt(&r);
        return;
    };
    match kind % 6 {
        0 => {
            let r = read_route(KEY, "web.1", text);
            corrupt(&r);
            if let Ok(route) = r {
                let again = read_route(KEY, "web.1", &route.to_value().to_string());
                assert_eq!(again.ok(), Some(route));
            }
        }
        1 => {
            // The hostname the key names: the record's own when it has one.
            let hostname = read_json(KEY, text)
                .ok()
                .and_then(|v| v.get("hostname")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "a".into());
            let r = read_server(KEY, &hostname, text);
            corrupt(&r);
            if let Ok(server) = r {
                let again = read_server(KEY, &hostname, &server.to_value().to_string());
                assert_eq!(again.ok(), Some(server));
            }
        }
        2 => {
            let r = read_answer(KEY, text);
            corrupt(&r);
            if let Ok(answer) = r {
                assert_eq!(read_answer(KEY, &answer.to_text()).ok(), Some(answer));
            }
        }
        3 => {
            let r = PolicyRecord::from_text(KEY, record);
            corrupt(&r);
            if let Ok(policy) = r {
                let again = PolicyRecord::from_text(KEY, policy.to_text().as_bytes());
                assert_eq!(again.ok(), Some(policy));
            }
        }
        4 => {
            let r = read_change(KEY, text);
            corrupt(&r);
            if let Ok(change) = r {
                assert_eq!(
                    read_change(KEY, &change.to_value().to_string()).ok(),
                    Some(change)
                );
            }
        }
        _ => {
            let r = read_volume_claim(KEY, text);
            corrupt(&r);
            assert_eq!(r.is_ok(), !text.is_empty());
        }
    }
});
