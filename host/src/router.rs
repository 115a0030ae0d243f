//! Longest-prefix routing of request paths to plugin mounts, on segment
//! boundaries (`/api` matches `/api` and `/api/x`, never `/apix`).

/// A mount table, longest prefix first. `T` identifies the plugin.
#[derive(Debug, Clone)]
pub struct Router<T> {
    mounts: Vec<(String, T)>,
}

/// The mount a path matched.
#[derive(Debug, PartialEq)]
pub struct Route<'a, T> {
    pub target: &'a T,
    pub mount: &'a str,
    /// The path after the mount; always starts with `/`.
    pub subpath: &'a str,
}

impl<T> Router<T> {
    pub fn new(mounts: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut mounts: Vec<(String, T)> = mounts.into_iter().collect();
        mounts.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Router { mounts }
    }

    pub fn route<'a>(&'a self, path: &'a str) -> Option<Route<'a, T>> {
        self.mounts.iter().find_map(|(mount, target)| {
            let subpath = match_mount(mount, path)?;
            Some(Route {
                target,
                mount,
                subpath,
            })
        })
    }

    pub fn mounts(&self) -> impl Iterator<Item = (&str, &T)> {
        self.mounts.iter().map(|(m, t)| (m.as_str(), t))
    }
}

fn match_mount<'a>(mount: &str, path: &'a str) -> Option<&'a str> {
    if mount == "/" {
        return path.starts_with('/').then_some(path);
    }
    let rest = path.strip_prefix(mount)?;
    match rest.as_bytes().first() {
        None => Some("/"),
        Some(b'/') => Some(rest),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        Router::new([
            ("/".to_string(), "cloudapi"),
            ("/api".to_string(), "ticrypt"),
            ("/api/v1/admin".to_string(), "appliance"),
            ("/api/auth/v4".to_string(), "vmmanager"),
        ])
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        assert_eq!(
            r.route("/api/v1/admin/version").unwrap().target,
            &"appliance"
        );
        assert_eq!(
            r.route("/api/auth/v4/public/token").unwrap().target,
            &"vmmanager"
        );
        assert_eq!(r.route("/api/drives").unwrap().target, &"ticrypt");
        assert_eq!(r.route("/my/machines").unwrap().target, &"cloudapi");
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let r = router();
        let apix = r.route("/apix").unwrap();
        assert_eq!(apix.target, &"cloudapi");
        assert_eq!(apix.subpath, "/apix");
        let api = r.route("/api").unwrap();
        assert_eq!(
            (api.target, api.mount, api.subpath),
            (&"ticrypt", "/api", "/")
        );
        assert_eq!(r.route("/api/").unwrap().subpath, "/");
        assert_eq!(r.route("/api/v1/adminx").unwrap().target, &"ticrypt");
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let r = Router::new([("/api".to_string(), 1)]);
        assert!(r.route("/other").is_none());
        assert!(r.route("/").is_none());
    }
}
