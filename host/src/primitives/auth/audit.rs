//! The audit trail: every change to identities, keys and tokens, and every refused authentication, with who, what, when, from where and how it ended.

use super::AuthError;
use super::store::Tx;

/// One entry of the audit trail. Never holds a secret: no password, token value,
/// hash or signature, only names, ids and fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// Who acted: the actor the `Auth` handle was made for (`kernel` unless set
    /// with [`Auth::with_origin`](super::Auth::with_origin), e.g. `plugin:cloudapi`).
    pub actor: String,
    /// What happened: one of the `Action` names (`account.create`, `auth.password`, …).
    pub action: String,
    /// The identity concerned: an account login (`parent/sub` for a sub-user), or for
    /// a failed authentication the login or key id presented.
    pub subject: String,
    /// Particulars: changed field names, a key's name and fingerprint, a token's id and scope.
    pub detail: String,
    /// Where from: the peer of the request, empty when there is none.
    pub peer: String,
    /// `ok`, or why the attempt was refused (`invalid-credentials`, `throttled`, …).
    pub outcome: String,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    RealmAdd,
    AccountCreate,
    AccountUpdate,
    AccountDelete,
    KeyAdd,
    KeyDelete,
    TokenIssue,
    TokenRevoke,
    TokenPurge,
    ScopeIdleTtl,
    PasswordCheck,
    SignatureCheck,
    TokenCheck,
    /// A refused change of a chosen token.
    TokenUpdate,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::RealmAdd => "realm.add",
            Action::AccountCreate => "account.create",
            Action::AccountUpdate => "account.update",
            Action::AccountDelete => "account.delete",
            Action::KeyAdd => "key.add",
            Action::KeyDelete => "key.delete",
            Action::TokenIssue => "token.issue",
            Action::TokenRevoke => "token.revoke",
            Action::TokenPurge => "token.purge",
            Action::ScopeIdleTtl => "scope.idle-ttl",
            Action::PasswordCheck => "auth.password",
            Action::SignatureCheck => "auth.signature",
            Action::TokenCheck => "auth.token",
            Action::TokenUpdate => "token.update",
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    /// A throttle counter refused the attempt before any secret was checked.
    Throttled,
    /// The secret was right but the account (or its parent) is disabled.
    Disabled,
    /// No account, key or token matched what was presented.
    Unknown,
    /// Wrong password or signature.
    InvalidCredentials,
    Expired,
    Revoked,
    /// A valid token presented for a scope it was not issued for.
    WrongScope,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Disabled => "disabled",
            Outcome::Unknown => "unknown",
            Outcome::InvalidCredentials => "invalid-credentials",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::WrongScope => "wrong-scope",
        }
    }
}

/// Who acts through an `Auth` handle, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    pub(super) actor: String,
    pub(super) peer: String,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            actor: "kernel".into(),
            peer: String::new(),
        }
    }
}

/// An entry about to be written.
pub(super) struct Event<'a> {
    pub(super) action: Action,
    pub(super) subject: &'a str,
    pub(super) detail: String,
    pub(super) outcome: Outcome,
}

impl Event<'_> {
    /// Appends the entry, attributed to `actor` and from `peer`, at `now`.
    pub(super) fn write(
        self,
        tx: &dyn Tx,
        actor: &str,
        peer: &str,
        now: u64,
    ) -> Result<(), AuthError> {
        tx.insert_audit(&AuditEntry {
            id: 0,
            at: now,
            actor: printable(actor, 128),
            action: self.action.as_str().to_owned(),
            subject: printable(self.subject, 256),
            detail: printable(&self.detail, 512),
            peer: printable(peer, 128),
            outcome: self.outcome.as_str().to_owned(),
        })
    }
}

/// `text` cut to `max` characters with control characters replaced, so nothing a
/// client sent can forge lines or grow the trail without bound.
pub(super) fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_cuts_and_masks_control_characters() {
        assert_eq!(printable("a\nb\u{7}c", 10), "a?b?c");
        assert_eq!(printable("abcdef", 3), "abc");
    }
}
