//! One authenticated request as the handlers see it.

use tessera_sdk::Request;
use tessera_sdk::auth::Account;

use crate::auth::Caller;
use crate::protocol::inputs::Inputs;
use crate::settings::Settings;

pub struct Ctx<'a> {
    pub request: &'a Request,
    pub inputs: Inputs,
    pub caller: Caller,
    /// The account the path names (`my` resolved): the caller's own.
    pub account: Account,
    pub settings: Settings,
    pub api_version: &'static str,
    pub now_ms: u64,
}

impl Ctx<'_> {
    pub fn login(&self) -> &str {
        &self.account.login
    }

    /// Whether the answer takes API 9's shapes (roles with member objects) rather than 7/8's.
    pub fn v9(&self) -> bool {
        self.api_version.starts_with('9')
    }

    /// A sub-user of this account as the identity store names it: `ACCOUNT/SUB`.
    pub fn sub_login(&self, sub: &str) -> String {
        format!("{}/{sub}", self.account.login)
    }
}
