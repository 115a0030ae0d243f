//! A small method + path-pattern router. Patterns are `/notes/:id` (one
//! segment, percent-decoded) and `/files/*rest` (the remaining path). The
//! router stores any handler type, so each plugin chooses its own signature.

/// Parameters captured from a path pattern.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
    Rest(&'static str),
}

struct Route<H> {
    method: &'static str,
    text: &'static str,
    pattern: Vec<Segment>,
    handler: H,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum RouteMatch<'a, H> {
    Found(&'a H, Params),
    /// The path exists but not for this method; carries the allowed methods.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// Routes in the order they were added; the first match wins.
pub struct Router<H> {
    routes: Vec<Route<H>>,
}

impl<H> Default for Router<H> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

impl<H> Router<H> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a route. `method` is upper-case; `"*"` matches any method.
    pub fn add(mut self, method: &'static str, pattern: &'static str, handler: H) -> Self {
        self.routes.push(Route {
            method,
            text: pattern,
            pattern: parse_pattern(pattern),
            handler,
        });
        self
    }

    /// Every route as `(method, pattern)`, in the order added: what a plugin
    /// exposes so tests can visit each route (a new route cannot be missed).
    pub fn table(&self) -> Vec<(&'static str, &'static str)> {
        self.routes.iter().map(|r| (r.method, r.text)).collect()
    }

    /// Find the handler for a method and a path (the request's `subpath`).
    /// `HEAD` falls back to `GET` routes.
    pub fn route(&self, method: &str, path: &str) -> RouteMatch<'_, H> {
        let segments: Vec<&str> = split_path(path);
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = match_pattern(&route.pattern, &segments) else {
                continue;
            };
            let method_ok = route.method == "*"
                || route.method == method
                || (method == "HEAD" && route.method == "GET");
            if method_ok {
                return RouteMatch::Found(&route.handler, params);
            }
            if !allowed.contains(&route.method) {
                allowed.push(route.method);
            }
        }
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            RouteMatch::MethodNotAllowed(allowed)
        }
    }
}

fn parse_pattern(pattern: &'static str) -> Vec<Segment> {
    split_path(pattern)
        .into_iter()
        .map(|s| {
            if let Some(name) = s.strip_prefix(':') {
                Segment::Param(name)
            } else if let Some(name) = s.strip_prefix('*') {
                Segment::Rest(name)
            } else {
                Segment::Literal(s)
            }
        })
        .collect()
}

/// Segments of a path; a trailing slash is ignored, so `/a/` matches `/a`.
fn split_path(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn match_pattern(pattern: &[Segment], segments: &[&str]) -> Option<Params> {
    let mut params = Vec::new();
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Rest(name) => {
                let rest = segments.get(i..).unwrap_or(&[]).join("/");
                params.push((*name, rest));
                return Some(Params(params));
            }
            Segment::Literal(lit) => {
                if segments.get(i) != Some(lit) {
                    return None;
                }
            }
            Segment::Param(name) => {
                params.push((*name, crate::query::decode_segment(segments.get(i)?)));
            }
        }
    }
    (segments.len() == pattern.len()).then_some(Params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u32> {
        Router::new()
            .add("GET", "/notes", 1)
            .add("POST", "/notes", 2)
            .add("GET", "/notes/:id", 3)
            .add("DELETE", "/notes/:id", 4)
            .add("GET", "/files/*rest", 5)
            .add("*", "/any", 6)
    }

    #[test]
    fn literal_and_param_routes_match() {
        let r = router();
        assert_eq!(
            r.route("GET", "/notes"),
            RouteMatch::Found(&1, Params::default())
        );
        assert_eq!(
            r.route("POST", "/notes/"),
            RouteMatch::Found(&2, Params::default())
        );
        match r.route("GET", "/notes/a%20b") {
            RouteMatch::Found(h, p) => {
                assert_eq!(*h, 3);
                assert_eq!(p.get("id"), Some("a b"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_table_lists_every_route_in_order() {
        let table = router().table();
        assert_eq!(table.len(), 6);
        assert_eq!(table[0], ("GET", "/notes"));
        assert_eq!(table[4], ("GET", "/files/*rest"));
        assert_eq!(table[5], ("*", "/any"));
    }

    #[test]
    fn wrong_method_lists_allowed_methods() {
        assert_eq!(
            router().route("PUT", "/notes/7"),
            RouteMatch::MethodNotAllowed(vec!["GET", "DELETE"])
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        let r = router();
        assert_eq!(r.route("GET", "/notes/1/extra"), RouteMatch::NotFound);
        assert_eq!(r.route("GET", "/nope"), RouteMatch::NotFound);
    }

    #[test]
    fn rest_captures_the_tail_and_head_falls_back_to_get() {
        match router().route("HEAD", "/files/a/b/c") {
            RouteMatch::Found(h, p) => {
                assert_eq!(*h, 5);
                assert_eq!(p.get("rest"), Some("a/b/c"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            router().route("PATCH", "/any"),
            RouteMatch::Found(&6, _)
        ));
    }
}
