//! `hello`: the smallest real Tessera plugin, to copy when starting your own.
//! A notes API on the storage primitive, a counter, and a trivial route.
//!
//! Routes (relative to the mount):
//!   GET    /hello              {"hello":"world"}
//!   GET    /greeting           the `greeting` setting from the site config
//!   GET    /notes              list; ?tag=&title_like=&order=title|-title&offset=&limit=
//!   POST   /notes              create {title, body?, tags?} -> 201
//!   POST   /notes/batch        create several atomically (all or none)
//!   GET    /notes/:id          one note; `etag` is its version
//!   PUT    /notes/:id          replace; `if-match: VERSION` for optimistic locking
//!   DELETE /notes/:id
//!   GET    /counter, POST /counter
//!   GET    /whoami             Basic auth checked by the kernel's identity store
//!   POST   /tokens             Basic auth -> a session token (shown once)
//!   GET    /me                 `Authorization: Bearer TOKEN`
//!   POST   /signup             {login, email, password}; needs the `auth-admin` grant
//!   POST   /jobs               {kind: count|spin|fail|trap, steps?, ms?, key?, resume?} -> 202
//!   GET    /jobs/:id           the job, with its log lines
//!   DELETE /jobs/:id           cancel it
//!   POST   /vms                {name, image (name), cpus?, ram_mib?, disk_mib?} -> 202
//!   GET    /vms/:id            one VM of the site's hypervisor
//!   POST   /vms/:id/:action    start | stop | reboot | delete -> 202 with the job id
//!   GET    /ws                 WebSocket: greets, echoes text, counts messages in the
//!                              socket's state; `watch` streams the site's VM changes,
//!                              `count` answers the count, `bye` closes, `trap` panics

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_sdk::auth::{self, Account, AuthError, TokenFormat, TokenRequest};
use tessera_sdk::hypervisor::{self as hv, HvError, Vm, VmAction, VmSpec};
use tessera_sdk::jobs::{self, JobError, JobInfo, JobState, JobSubmission, OnRestart};
use tessera_sdk::sockets::{self, Message, Socket, SocketEvent, SocketReply};
use tessera_sdk::storage::{self, Collection, Filter, StorageError, Versioned};
use tessera_sdk::{Job, JobOutcome, Params, Plugin, Request, Response, RouteMatch, Router};

type Handler = fn(&Request, &Params) -> Result<Response, ApiError>;

fn routes() -> Router<Handler> {
    Router::<Handler>::new()
        .add("GET", "/hello", hello)
        .add("GET", "/greeting", greeting)
        .add("GET", "/notes", list_notes)
        .add("POST", "/notes", create_note)
        .add("POST", "/notes/batch", create_batch)
        .add("GET", "/notes/:id", get_note)
        .add("PUT", "/notes/:id", replace_note)
        .add("DELETE", "/notes/:id", delete_note)
        .add("GET", "/counter", get_counter)
        .add("POST", "/counter", bump_counter)
        .add("GET", "/whoami", whoami)
        .add("POST", "/tokens", create_token)
        .add("GET", "/me", me)
        .add("POST", "/signup", signup)
        .add("POST", "/jobs", submit_job)
        .add("GET", "/jobs/:id", get_job)
        .add("DELETE", "/jobs/:id", cancel_job)
        .add("POST", "/vms", create_vm)
        .add("GET", "/vms/:id", get_vm)
        .add("POST", "/vms/:id/:action", act_on_vm)
        .add("GET", "/ws", open_socket)
}

const NOTES: Collection = Collection::new("notes");
const COUNTERS: Collection = Collection::new("counters");

struct Hello;

impl Plugin for Hello {
    fn handle(req: Request) -> Response {
        let result = match routes().route(&req.method, &req.subpath) {
            RouteMatch::Found(handler, params) => handler(&req, &params),
            RouteMatch::MethodNotAllowed(allowed) => {
                Err(ApiError::new(405, "method not allowed")
                    .with_header("allow", allowed.join(", ")))
            }
            RouteMatch::NotFound => Err(ApiError::new(404, "no such route")),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    /// `count` runs `steps` short steps, each a fresh instance resumed with the
    /// saved state; `fail` fails; `trap` panics (the kernel fails the job).
    fn run_job(job: Job) -> JobOutcome {
        match job.kind.as_str() {
            "count" => count_step(&job),
            "spin" => spin(&job),
            "fail" => JobOutcome::Failed(("Boom".into(), "failed as asked".into())),
            "trap" => panic!("trapping as asked"),
            other => JobOutcome::Failed(("UnknownKind".into(), format!("no job kind {other}"))),
        }
    }

    /// The socket's state is how many messages it has seen.
    fn on_socket(socket: Socket, event: SocketEvent) -> SocketReply {
        let seen: u64 = socket.state.parse().unwrap_or(0);
        match event {
            SocketEvent::Opened => SocketReply::new().text("welcome"),
            SocketEvent::Message(Message::Text(text)) => {
                let reply = SocketReply::new().state((seen + 1).to_string());
                match text.as_str() {
                    "watch" => reply.subscribe("hypervisor.vm").text("watching"),
                    "count" => reply.text(format!("{}", seen + 1)),
                    "bye" => reply.close(1000, "bye"),
                    "trap" => panic!("trapping as asked"),
                    _ => reply.text(text),
                }
            }
            SocketEvent::Message(Message::Binary(data)) => SocketReply::new().binary(data),
            SocketEvent::Event(event) => SocketReply::new().text(event.payload),
        }
    }
}

/// Accepts a WebSocket; a plain GET is told to upgrade.
fn open_socket(req: &Request, _: &Params) -> Result<Response, ApiError> {
    if !sockets::is_upgrade(req) {
        return Err(ApiError::new(426, "this route speaks WebSocket")
            .with_header("upgrade", "websocket".into()));
    }
    Ok(sockets::accept("0"))
}

#[derive(Serialize, Deserialize, Default)]
struct CountState {
    done: u32,
}

/// One long step: busy for `ms` milliseconds (a job that is running, not
/// between steps, when the kernel dies).
fn spin(job: &Job) -> JobOutcome {
    let ms = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|p| p["ms"].as_u64())
        .unwrap_or(1000);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    JobOutcome::Done(json!({ "spun_ms": ms, "attempt": job.attempt }).to_string())
}

fn count_step(job: &Job) -> JobOutcome {
    let steps = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|p| p["steps"].as_u64())
        .unwrap_or(3) as u32;
    let state: CountState = job
        .state
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let done = state.done + 1;
    let _ = jobs::append_log(&job.id, &format!("step {done} of {steps}"));
    let _ = jobs::progress(&job.id, (done * 100 / steps.max(1)).min(100) as u8);
    if done >= steps {
        JobOutcome::Done(json!({ "counted": done }).to_string())
    } else {
        let state = serde_json::to_string(&CountState { done }).unwrap_or_default();
        JobOutcome::ContinueAfter((20, state))
    }
}

tessera_sdk::export_plugin!(Hello);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

impl Note {
    fn validate(&self) -> Result<(), ApiError> {
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err(ApiError::new(400, "title must be 1-200 characters"));
        }
        Ok(())
    }
}

fn note_json(note: &Versioned<Note>) -> serde_json::Value {
    json!({
        "id": note.key,
        "version": note.version,
        "title": note.value.title,
        "body": note.value.body,
        "tags": note.value.tags,
        "created": note.created,
        "updated": note.updated,
    })
}

fn hello(_: &Request, _: &Params) -> Result<Response, ApiError> {
    Ok(Response::json(200, &json!({"hello": "world"})))
}

fn greeting(_: &Request, _: &Params) -> Result<Response, ApiError> {
    let greeting: String =
        tessera_sdk::config::get("greeting").unwrap_or_else(|| "hello".to_string());
    Ok(Response::json(200, &json!({ "greeting": greeting })))
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
    title_like: Option<String>,
    order: Option<String>,
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

fn list_notes(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let q: ListQuery = req
        .query_as()
        .map_err(|e| ApiError::new(400, &format!("bad query: {e}")))?;
    let mut filters = Vec::new();
    if let Some(tag) = &q.tag {
        // Tags are an array; match any element by storing a lookup path per note
        // would need an index: here we use LIKE on the JSON text of the array.
        filters.push(Filter::like("tags", &format!("%\"{}\"%", escape_like(tag))));
    }
    if let Some(pattern) = &q.title_like {
        filters.push(Filter::like("title", pattern));
    }
    let mut query = NOTES.query();
    if !filters.is_empty() {
        query = query.filter(Filter::and(filters));
    }
    query = match q.order.as_deref() {
        None | Some("id") => query.order_by("_key", false),
        Some("title") => query.order_by("title", false),
        Some("-title") => query.order_by("title", true),
        Some("-created") => query.order_by("_created", true),
        Some(other) => return Err(ApiError::new(400, &format!("unknown order {other}"))),
    };
    if let Some(limit) = q.limit {
        query = query.limit(limit.min(1000));
    }
    let page = query.offset(q.offset).fetch::<Note>()?;
    let items: Vec<_> = page.items.iter().map(note_json).collect();
    Ok(
        Response::json(200, &json!({ "items": items, "total": page.total }))
            .with_header("x-total-count", &page.total.to_string()),
    )
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn parse_note(req: &Request) -> Result<Note, ApiError> {
    let note: Note = req
        .json()
        .map_err(|e| ApiError::new(400, &format!("invalid JSON body: {e}")))?;
    note.validate()?;
    Ok(note)
}

fn create_note(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let note = parse_note(req)?;
    let id = storage::next_id("notes")?.to_string();
    NOTES.insert(&id, &note)?;
    let stored = NOTES
        .get::<Note>(&id)?
        .ok_or_else(|| ApiError::new(500, "note vanished"))?;
    Ok(Response::json(201, &note_json(&stored)).with_header(
        "location",
        &format!("{}/notes/{id}", req.mount.trim_end_matches('/')),
    ))
}

#[derive(Deserialize)]
struct BatchItem {
    id: String,
    #[serde(flatten)]
    note: Note,
}

fn create_batch(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let items: Vec<BatchItem> = req
        .json()
        .map_err(|e| ApiError::new(400, &format!("invalid JSON body: {e}")))?;
    let mut writes = Vec::with_capacity(items.len());
    for item in &items {
        item.note.validate()?;
        writes.push(NOTES.insert_op(&item.id, &item.note)?);
    }
    match storage::batch(&writes) {
        Ok(docs) => Ok(Response::json(201, &json!({ "created": docs.len() }))),
        Err(e) => Err(ApiError::new(409, "batch refused; nothing was written")
            .with_detail(json!({ "index": e.index, "reason": format!("{:?}", e.error) }))),
    }
}

fn get_note(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("id").unwrap_or_default();
    let note = NOTES
        .get::<Note>(id)?
        .ok_or_else(|| ApiError::new(404, "no such note"))?;
    Ok(
        Response::json(200, &note_json(&note))
            .with_header("etag", &format!("\"{}\"", note.version)),
    )
}

fn replace_note(req: &Request, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("id").unwrap_or_default();
    let note = parse_note(req)?;
    let expected = match req.header("if-match") {
        Some(v) => Some(
            v.trim_matches('"')
                .parse::<u64>()
                .map_err(|_| ApiError::new(400, "if-match must be a version number"))?,
        ),
        None => None,
    };
    NOTES.put(id, &note, expected)?;
    let stored = NOTES
        .get::<Note>(id)?
        .ok_or_else(|| ApiError::new(404, "no such note"))?;
    Ok(Response::json(200, &note_json(&stored)))
}

fn delete_note(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("id").unwrap_or_default();
    if NOTES.delete(id, None)? {
        Ok(Response::new(204))
    } else {
        Err(ApiError::new(404, "no such note"))
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Counter {
    value: u64,
}

fn get_counter(_: &Request, _: &Params) -> Result<Response, ApiError> {
    let value = COUNTERS
        .get::<Counter>("main")?
        .map(|c| c.value.value)
        .unwrap_or(0);
    Ok(Response::json(200, &json!({ "value": value })))
}

/// Increment with optimistic concurrency: retry when another request won.
fn bump_counter(_: &Request, _: &Params) -> Result<Response, ApiError> {
    for _ in 0..50 {
        let (current, version) = match COUNTERS.get::<Counter>("main")? {
            Some(c) => (c.value.value, c.version),
            None => (0, 0),
        };
        match COUNTERS.put("main", &Counter { value: current + 1 }, Some(version)) {
            Ok(_) => return Ok(Response::json(200, &json!({ "value": current + 1 }))),
            Err(storage::Error::Storage(StorageError::Conflict(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(503, "counter is too contended, try again"))
}

/// The scope of this plugin's session tokens.
const SESSION_SCOPE: &str = "hello:session";

fn account_json(account: &Account) -> serde_json::Value {
    json!({ "login": account.login, "email": account.email, "realm": account.realm, "admin": account.admin })
}

/// The account of the request's Basic credentials, checked by the kernel.
fn basic_account(req: &Request) -> Result<Account, ApiError> {
    let (login, password) = req.basic_auth().ok_or_else(|| {
        ApiError::new(401, "basic credentials required")
            .with_header("www-authenticate", "Basic realm=\"hello\"".into())
    })?;
    Ok(auth::verify_password(&login, &password, None, &req.peer)?)
}

fn whoami(req: &Request, _: &Params) -> Result<Response, ApiError> {
    Ok(Response::json(200, &account_json(&basic_account(req)?)))
}

fn create_token(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let account = basic_account(req)?;
    let token = auth::issue_token(&TokenRequest {
        owner: account.login,
        scope: SESSION_SCOPE.to_string(),
        binding: None,
        ttl_seconds: Some(3600),
        idle_ttl_seconds: Some(600),
        description: Some("hello session".into()),
        format: TokenFormat::Opaque,
        one_use: false,
    })?;
    Ok(Response::json(
        201,
        &json!({ "id": token.id, "token": token.value, "expires_at": token.expires_at }),
    ))
}

fn me(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let token = req
        .bearer_token()
        .ok_or_else(|| ApiError::new(401, "bearer token required"))?;
    let claims = auth::check_token(token, "hello:*", &req.peer)?;
    Ok(Response::json(
        200,
        &json!({ "account": account_json(&claims.owner), "scope": claims.scope }),
    ))
}

#[derive(Deserialize)]
struct Signup {
    login: String,
    email: String,
    password: String,
}

fn signup(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let form: Signup = req
        .json()
        .map_err(|e| ApiError::new(400, &format!("invalid JSON body: {e}")))?;
    let account = auth::create_account(&auth::NewAccount {
        login: form.login,
        email: form.email,
        password: Some(form.password),
        first_name: None,
        last_name: None,
        company: None,
        phone: None,
        realm: None,
        admin: false,
        parent: None,
    })?;
    Ok(Response::json(201, &account_json(&account)))
}

#[derive(Deserialize)]
struct JobRequest {
    kind: String,
    #[serde(default)]
    steps: Option<u32>,
    #[serde(default)]
    ms: Option<u64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    resume: bool,
}

fn job_json(job: &JobInfo, log: Vec<String>) -> serde_json::Value {
    let state = match job.state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    };
    json!({
        "id": job.id, "kind": job.kind, "state": state, "progress": job.progress,
        "result": job.result.as_deref().and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok()),
        "error_code": job.error_code, "error_message": job.error_message,
        "attempts": job.attempts, "log": log,
    })
}

fn submit_job(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let body: JobRequest = req
        .json()
        .map_err(|e| ApiError::new(400, &format!("invalid JSON body: {e}")))?;
    let job = jobs::submit(&JobSubmission {
        kind: body.kind,
        payload: json!({ "steps": body.steps.unwrap_or(3), "ms": body.ms.unwrap_or(1000) })
            .to_string(),
        exclusive_key: body.key,
        on_restart: if body.resume {
            OnRestart::Resume
        } else {
            OnRestart::Fail
        },
        delay_ms: None,
    })?;
    Ok(
        Response::json(202, &job_json(&job, Vec::new())).with_header(
            "location",
            &format!("{}/jobs/{}", req.mount.trim_end_matches('/'), job.id),
        ),
    )
}

fn get_job(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let id = params.get("id").unwrap_or_default();
    let job = jobs::get(id)?.ok_or_else(|| ApiError::new(404, "no such job"))?;
    let log = jobs::log_lines(id, 0, 1000)?;
    Ok(Response::json(200, &job_json(&job, log)))
}

fn cancel_job(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let job = jobs::cancel(params.get("id").unwrap_or_default())?;
    Ok(Response::json(200, &job_json(&job, Vec::new())))
}

#[derive(Deserialize)]
struct NewVm {
    name: String,
    image: String,
    #[serde(default = "one")]
    cpus: u32,
    #[serde(default = "ram")]
    ram_mib: u64,
    #[serde(default = "disk")]
    disk_mib: u64,
}
fn one() -> u32 {
    1
}
fn ram() -> u64 {
    512
}
fn disk() -> u64 {
    10_240
}

/// The demo's VMs all belong to one owner.
const VM_OWNER: &str = "hello";

fn vm_json(vm: &Vm) -> serde_json::Value {
    let state = format!("{:?}", vm.state).to_lowercase();
    let state = state.rsplit(':').next().unwrap_or_default().to_string();
    json!({ "id": vm.id, "name": vm.name, "state": state, "image": vm.image, "ips": vm.ips,
            "node": vm.node, "cpus": vm.cpus, "ram_mib": vm.ram_mib })
}

fn create_vm(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let body: NewVm = req
        .json()
        .map_err(|e| ApiError::new(400, &format!("invalid JSON body: {e}")))?;
    let image = hv::list_images()?
        .into_iter()
        .find(|i| i.name == body.image || i.id == body.image)
        .ok_or_else(|| ApiError::new(400, "no such image"))?;
    let spec = VmSpec {
        name: body.name,
        owner: VM_OWNER.into(),
        image: image.id,
        cpus: body.cpus,
        ram_mib: body.ram_mib,
        disk_mib: body.disk_mib,
        networks: Vec::new(),
        tags: "{}".into(),
        metadata: "{}".into(),
        deletion_protection: false,
        data_disks: Vec::new(),
    };
    let (vm, job) = hv::create_vm(&spec, VM_OWNER)?;
    let mut body = vm_json(&vm);
    body["job"] = json!(job);
    Ok(Response::json(202, &body))
}

fn get_vm(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let vm = hv::get_vm(params.get("id").unwrap_or_default())?
        .ok_or_else(|| ApiError::new(404, "no such vm"))?;
    Ok(Response::json(200, &vm_json(&vm)))
}

fn act_on_vm(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let action = match params.get("action") {
        Some("start") => VmAction::Start,
        Some("stop") => VmAction::Stop,
        Some("reboot") => VmAction::Reboot,
        Some("delete") => VmAction::Delete,
        _ => {
            return Err(ApiError::new(
                400,
                "action is start, stop, reboot or delete",
            ));
        }
    };
    let job = hv::act(params.get("id").unwrap_or_default(), action, VM_OWNER)?;
    Ok(Response::json(202, &json!({ "job": job })))
}

impl From<HvError> for ApiError {
    fn from(e: HvError) -> Self {
        match e {
            HvError::NotFound(m) => ApiError::new(404, &m),
            HvError::IllegalTransition(state) => ApiError::new(409, "not allowed in this state")
                .with_detail(json!({ "state": state })),
            HvError::Capacity(m) => ApiError::new(503, &m),
            HvError::Protected => ApiError::new(409, "the vm is protected from deletion"),
            HvError::Invalid(m) => ApiError::new(400, &m),
            HvError::Conflict(m) => ApiError::new(409, &m),
            other => {
                tessera_sdk::error!("hypervisor failed: {other:?}");
                ApiError::new(500, "hypervisor failed")
            }
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound => ApiError::new(404, "no such job"),
            JobError::ExclusiveBusy(id) => {
                ApiError::new(409, "another job holds that key").with_detail(json!({ "job": id }))
            }
            JobError::Invalid(m) => ApiError::new(400, &m),
            other => {
                tessera_sdk::error!("jobs failed: {other:?}");
                ApiError::new(500, "job queue failed")
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials | AuthError::NotFound(_) => {
                ApiError::new(401, "invalid credentials")
            }
            AuthError::Disabled => ApiError::new(403, "account disabled"),
            AuthError::Throttled(secs) => ApiError::new(429, "too many failed attempts")
                .with_header("retry-after", secs.to_string()),
            AuthError::Invalid(m) => ApiError::new(400, &m),
            AuthError::Conflict(m) => ApiError::new(409, &format!("already taken: {m}")),
            AuthError::Forbidden => ApiError::new(403, "this mount may not change identities"),
            other => {
                tessera_sdk::error!("auth failed: {other:?}");
                ApiError::new(500, "authentication failed")
            }
        }
    }
}

/// This plugin's error envelope: `{"error": message, ...detail}`.
struct ApiError {
    status: u16,
    message: String,
    detail: Option<serde_json::Value>,
    headers: Vec<(String, String)>,
}

impl ApiError {
    fn new(status: u16, message: &str) -> Self {
        ApiError {
            status,
            message: message.to_string(),
            detail: None,
            headers: Vec::new(),
        }
    }

    fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(detail) = self.detail {
            body["detail"] = detail;
        }
        let mut response = Response::json(self.status, &body);
        for (name, value) in &self.headers {
            response = response.with_header(name, value);
        }
        response
    }
}

impl From<storage::Error> for ApiError {
    fn from(e: storage::Error) -> Self {
        match e {
            storage::Error::Storage(StorageError::Conflict(current)) => {
                ApiError::new(409, "version conflict")
                    .with_detail(json!({ "current_version": current }))
            }
            storage::Error::Storage(StorageError::AlreadyExists) => {
                ApiError::new(409, "already exists")
            }
            storage::Error::Storage(StorageError::NotFound) => ApiError::new(404, "not found"),
            storage::Error::Storage(StorageError::Invalid(m)) => ApiError::new(400, &m),
            other => {
                tessera_sdk::error!("storage failed: {other}");
                ApiError::new(500, "storage failed")
            }
        }
    }
}
