//! The ABI's exports (`docs/ABI.md`): checked on a compiled module, then
//! looked up once per instance into named, typed fields.

use wasmtime::{ExternType, Instance as WasmInstance, Module, Store, TypedFunc, ValType};

use super::limiter::Ctx;
use super::PolicyError;

/// The exports and their signatures, as `docs/ABI.md` lists them.
const EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("flocker_abi_version", &[], &[ValType::I32]),
    ("flocker_alloc", &[ValType::I32], &[ValType::I32]),
    (
        "flocker_free",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
    ("flocker_info", &[], &[ValType::I64]),
    (
        "flocker_decide",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_load",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_apply",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_decide",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    ("flocker_snapshot_export", &[ValType::I32], &[ValType::I64]),
    ("flocker_snapshot_drop", &[ValType::I32], &[ValType::I64]),
];

fn same(a: impl ExactSizeIterator<Item = ValType>, b: &[ValType]) -> bool {
    a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
}

/// Checks that `module` exports `memory` and every function of the ABI with
/// its signature.
pub(crate) fn check_exports(module: &Module) -> Result<(), PolicyError> {
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(_) => {
            return Err(PolicyError::Abi(
                "export \"memory\" is not a 32-bit unshared memory".into(),
            ))
        }
        None => return Err(PolicyError::Abi("the module exports no \"memory\"".into())),
    }
    for (name, params, results) in EXPORTS {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if same(f.params(), params) && same(f.results(), results) => {}
            Some(ExternType::Func(f)) => {
                return Err(PolicyError::Abi(format!(
                    "export {name:?} has signature {f}, the ABI says params {params:?} results {results:?}"
                )))
            }
            Some(_) => return Err(PolicyError::Abi(format!("export {name:?} is not a function"))),
            None => return Err(PolicyError::Abi(format!("the module does not export {name:?}"))),
        }
    }
    Ok(())
}

/// Every export of one instance, typed, looked up once when it is made.
pub(super) struct Exports {
    pub alloc: TypedFunc<i32, i32>,
    pub free: TypedFunc<(i32, i32), i32>,
    pub abi_version: TypedFunc<(), i32>,
    pub info: TypedFunc<(), i64>,
    pub decide: TypedFunc<(i32, i32), i64>,
    pub snapshot_load: TypedFunc<(i32, i32), i64>,
    pub snapshot_apply: TypedFunc<(i32, i32, i32), i64>,
    pub snapshot_decide: TypedFunc<(i32, i32, i32), i64>,
    pub snapshot_export: TypedFunc<i32, i64>,
}

impl Exports {
    /// Looks every export up; [`check_exports`] has vouched for them.
    pub(super) fn of(
        instance: &WasmInstance,
        store: &mut Store<Ctx>,
    ) -> Result<Exports, PolicyError> {
        let abi = |e: wasmtime::Error| PolicyError::Abi(format!("{e:#}"));
        Ok(Exports {
            alloc: instance
                .get_typed_func(&mut *store, "flocker_alloc")
                .map_err(abi)?,
            free: instance
                .get_typed_func(&mut *store, "flocker_free")
                .map_err(abi)?,
            abi_version: instance
                .get_typed_func(&mut *store, "flocker_abi_version")
                .map_err(abi)?,
            info: instance
                .get_typed_func(&mut *store, "flocker_info")
                .map_err(abi)?,
            decide: instance
                .get_typed_func(&mut *store, "flocker_decide")
                .map_err(abi)?,
            snapshot_load: instance
                .get_typed_func(&mut *store, "flocker_snapshot_load")
                .map_err(abi)?,
            snapshot_apply: instance
                .get_typed_func(&mut *store, "flocker_snapshot_apply")
                .map_err(abi)?,
            snapshot_decide: instance
                .get_typed_func(&mut *store, "flocker_snapshot_decide")
                .map_err(abi)?,
            snapshot_export: instance
                .get_typed_func(&mut *store, "flocker_snapshot_export")
                .map_err(abi)?,
        })
    }
}
