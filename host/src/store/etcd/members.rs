//! One client per member, the member requests go to first, and failover.

#[allow(unused_imports)]
use super::*;

/// One client per etcd member and the member requests go to first. A
/// request that fails moves the preference to the next member and is tried
/// again there, within about the request timeout: a member that died costs
/// one failed attempt, not a share of every later request.
pub(super) struct Members {
    pub(super) clients: Vec<Client>,
    pub(super) preferred: AtomicUsize,
    /// Told each time requests move to another member, so that the watch
    /// leaves a member that stopped answering (a hung one keeps its
    /// connections open) instead of waiting for keepalive to notice.
    pub(super) moved: watch::Sender<usize>,
    pub(super) config: EtcdConfig,
    /// Set by the first answer. Before it, every member closing the
    /// connection at once for two rounds is taken for a refused
    /// certificate or a wrong scheme ([`early_close`]); after it, for etcd
    /// going away.
    pub(super) answered: AtomicBool,
}

/// How sure a failed request is not to have been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failed {
    /// The member was not reached (connection refused).
    Refused,
    /// The member refused it unapplied (no leader).
    NotApplied,
    /// It may have been applied: the connection broke or it timed out after sending.
    Maybe,
    /// etcd refused the request itself (too large, too many operations, not
    /// permitted): sending it again anywhere gives the same answer.
    Refusal,
}

pub(super) fn classify(e: &etcd_client::Error) -> Failed {
    if let etcd_client::Error::GRpcStatus(status) = e {
        let code = format!("{:?}", status.code());
        if matches!(
            code.as_str(),
            "InvalidArgument"
                | "FailedPrecondition"
                | "PermissionDenied"
                | "Unauthenticated"
                | "OutOfRange"
                | "Unimplemented"
                | "AlreadyExists"
                | "NotFound"
        ) {
            return Failed::Refusal;
        }
    }
    let text = e.to_string();
    if text.contains("tcp connect error") || text.contains("Connection refused") {
        Failed::Refused
    } else if text.contains("etcdserver: no leader") {
        Failed::NotApplied
    } else {
        Failed::Maybe
    }
}

impl Members {
    pub(super) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.clients.len().max(1)
    }

    /// Member `i` failed: prefer the next one (unless another request
    /// already moved on).
    pub(super) fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len().max(1);
        if self
            .preferred
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.moved.send_replace(next);
        }
    }

    /// Runs `op` on the preferred member, moving to the next on failure,
    /// until it succeeds or `request_timeout` has passed. Each attempt gets
    /// a third of that (at least 250 ms), so that a request stuck on a
    /// member that lost its leader is sent again once another is elected.
    /// Two whole rounds of refused connections end it at once: etcd is
    /// down. The flag says whether an earlier attempt may have been applied.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<(T, bool), StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_flagged(what, op).await.map_err(|(e, _)| e)
    }

    /// [`Members::call`], whose error also says whether an attempt may
    /// have been applied (an answer was lost), so that a save can read
    /// back whether it was.
    pub(super) async fn call_flagged<T, F, Fut>(
        &self,
        what: &str,
        mut op: F,
    ) -> Result<(T, bool), (StoreError, bool)>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.clients.len();
        let timeout = self.config.request_timeout;
        let per_attempt = (timeout / 3).max(Duration::from_millis(250));
        let start = Instant::now();
        let mut maybe = false;
        let mut last = String::from("no member tried");
        let (mut tried, mut refused, mut refused_rounds) = (0usize, 0usize, 0u32);
        let (mut early, mut early_rounds, mut early_why) = (0usize, 0u32, None);
        let mut backoff = Duration::from_millis(25);
        for attempt in 1usize.. {
            let i = self.preferred();
            let Some(client) = self.clients.get(i) else {
                break;
            };
            match tokio::time::timeout(per_attempt, op(client.clone())).await {
                Ok(Ok(v)) => {
                    self.answered.store(true, Ordering::Relaxed);
                    return Ok((v, maybe));
                }
                Ok(Err(e)) => {
                    // A certificate or a password is refused the same way
                    // by every member and on every attempt.
                    if let Some(d) = denied(&self.config, what, &e) {
                        return Err((d, maybe));
                    }
                    if !self.answered.load(Ordering::Relaxed) {
                        if let Some((sure, why)) = early_close(&self.config, &e) {
                            early += 1;
                            if sure || !matches!(early_why, Some((true, _))) {
                                early_why = Some((sure, why));
                            }
                        }
                    }
                    match classify(&e) {
                        Failed::Refused => refused += 1,
                        Failed::NotApplied => {}
                        Failed::Maybe => maybe = true,
                        Failed::Refusal => {
                            return Err((
                                StoreError::unavailable(format!(
                                    "etcd refused {what}: {}",
                                    status_message(&e)
                                )),
                                maybe,
                            ))
                        }
                    }
                    last = e.to_string();
                }
                Err(_) => {
                    maybe = true;
                    last = format!("no answer in {per_attempt:?}");
                }
            }
            self.failed(i);
            tried += 1;
            let spent = start.elapsed();
            if tried >= n {
                refused_rounds = if refused == tried {
                    refused_rounds + 1
                } else {
                    0
                };
                early_rounds = if early == tried { early_rounds + 1 } else { 0 };
                (tried, refused, early) = (0, 0, 0);
                if early_rounds >= 2 {
                    if let Some((_, what)) = early_why.take() {
                        return Err((StoreError::Denied { what }, maybe));
                    }
                }
                if refused_rounds >= 2 || (spent >= timeout && attempt >= 2) {
                    break;
                }
                tokio::time::sleep(backoff.min(timeout.saturating_sub(spent))).await;
                backoff = (backoff * 2).min(Duration::from_millis(400));
            } else if spent >= timeout && attempt >= 2 {
                break;
            }
        }
        Err((unavailable(&self.config, what, last), maybe))
    }

    pub(super) async fn txn(
        &self,
        what: &str,
        txn: Txn,
    ) -> Result<(TxnResponse, bool), StoreError> {
        self.txn_flagged(what, txn).await.map_err(|(e, _)| e)
    }

    /// [`Members::txn`] with [`Members::call_flagged`]'s error.
    pub(super) async fn txn_flagged(
        &self,
        what: &str,
        txn: Txn,
    ) -> Result<(TxnResponse, bool), (StoreError, bool)> {
        self.call_flagged(what, |c| {
            let txn = txn.clone();
            async move { kv(&c).txn(txn).await }
        })
        .await
    }
}

/// The server's own words for a refusal, without the transport's detail.
pub(super) fn status_message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}
