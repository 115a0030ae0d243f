//! Storage semantics, through the hello example plugin and the WIT interface:
//! versions, conflicts, atomic batches, filters, order, paging and totals.

use serde_json::{Value, json};

use crate::harness::{Server, client, json, test_site};

fn create(server: &Server, title: &str, tags: &[&str]) -> Value {
    let resp = client()
        .post(server.url("/hello/notes"))
        .json(&json!({ "title": title, "tags": tags }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    json(resp)
}

#[test]
fn a_created_note_reads_back_with_version_1() {
    let server = Server::with_site(&test_site());
    let note = create(&server, "first", &["a"]);
    assert_eq!(note["version"], 1);
    let id = note["id"].as_str().unwrap();
    let resp = client()
        .get(server.url(&format!("/hello/notes/{id}")))
        .send()
        .unwrap();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let read = json(resp);
    assert_eq!(
        (read["title"].as_str(), read["tags"].clone()),
        (Some("first"), json!(["a"]))
    );
}

#[test]
fn an_update_with_a_stale_version_is_a_conflict() {
    let server = Server::with_site(&test_site());
    let id = create(&server, "v1", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = server.url(&format!("/hello/notes/{id}"));
    let http = client();
    let ok = http
        .put(&url)
        .header("if-match", "1")
        .json(&json!({"title": "v2"}))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(json(ok)["version"], 2);
    let stale = http
        .put(&url)
        .header("if-match", "1")
        .json(&json!({"title": "v3"}))
        .send()
        .unwrap();
    assert_eq!(stale.status(), 409);
    assert_eq!(json(stale)["detail"]["current_version"], 2);
    assert_eq!(json(http.get(&url).send().unwrap())["title"], "v2");
}

#[test]
fn a_batch_with_one_bad_write_writes_nothing() {
    let server = Server::with_site(&test_site());
    let http = client();
    let first = http
        .post(server.url("/hello/notes/batch"))
        .json(&json!([{"id": "x1", "title": "one"}]))
        .send()
        .unwrap();
    assert_eq!(first.status(), 201);
    let refused = http
        .post(server.url("/hello/notes/batch"))
        .json(&json!([{"id": "x2", "title": "two"}, {"id": "x1", "title": "dup"}]))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(json(refused)["detail"]["index"], 1);
    assert_eq!(
        http.get(server.url("/hello/notes/x2"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        json(http.get(server.url("/hello/notes/x1")).send().unwrap())["title"],
        "one"
    );
}

#[test]
fn list_filters_orders_pages_and_counts() {
    let server = Server::with_site(&test_site());
    for (title, tags) in [
        ("delta", vec!["x"]),
        ("alpha", vec!["x", "y"]),
        ("charlie", vec![]),
        ("bravo", vec!["x"]),
    ] {
        create(&server, title, &tags);
    }
    let http = client();
    let list = |query: &str| {
        json(
            http.get(server.url(&format!("/hello/notes?{query}")))
                .send()
                .unwrap(),
        )
    };
    let titles = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap().to_string())
            .collect()
    };

    let all = list("order=title");
    assert_eq!(titles(&all), ["alpha", "bravo", "charlie", "delta"]);
    assert_eq!(all["total"], 4);

    let page = list("order=-title&offset=1&limit=2");
    assert_eq!(titles(&page), ["charlie", "bravo"]);
    assert_eq!(page["total"], 4, "total ignores offset and limit");

    let tagged = list("tag=x&order=title");
    assert_eq!(titles(&tagged), ["alpha", "bravo", "delta"]);
    assert_eq!(tagged["total"], 3);

    let like = list("title_like=%25ha%25&order=title");
    assert_eq!(titles(&like), ["alpha", "charlie"]);
}

#[test]
fn hostile_filter_values_are_data_not_sql() {
    let server = Server::with_site(&test_site());
    create(&server, "plain", &[]);
    let evil = "%27%29%3B%20DROP%20TABLE%20doc_hello%3B--";
    let resp = client()
        .get(server.url(&format!("/hello/notes?title_like={evil}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp)["total"], 0);
    let after = json(client().get(server.url("/hello/notes")).send().unwrap());
    assert_eq!(after["total"], 1, "the table is still there");
}

#[test]
fn deletes_and_missing_notes_are_reported() {
    let server = Server::with_site(&test_site());
    let id = create(&server, "bye", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let http = client();
    let url = server.url(&format!("/hello/notes/{id}"));
    assert_eq!(http.delete(&url).send().unwrap().status(), 204);
    assert_eq!(http.delete(&url).send().unwrap().status(), 404);
    assert_eq!(http.get(&url).send().unwrap().status(), 404);
}

#[test]
fn bad_input_gets_the_plugins_error_envelope() {
    let server = Server::with_site(&test_site());
    let http = client();
    let not_json = http
        .post(server.url("/hello/notes"))
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(
        json(not_json)["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    let empty_title = http
        .post(server.url("/hello/notes"))
        .json(&json!({"title": " "}))
        .send()
        .unwrap();
    assert_eq!(empty_title.status(), 400);
    let wrong_method = http.patch(server.url("/hello/notes")).send().unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET, POST");
}

#[test]
fn concurrent_increments_are_not_lost() {
    let server = Server::with_site(&test_site());
    let url = server.url("/hello/counter");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert_eq!(client().post(&url).send().unwrap().status(), 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(json(client().get(&url).send().unwrap())["value"], 40);
}

#[test]
fn settings_reach_the_plugin_through_the_config_interface() {
    let server = Server::with_site(&test_site());
    let body = json(client().get(server.url("/hello/greeting")).send().unwrap());
    assert_eq!(body["greeting"], "hi from the site");
}
