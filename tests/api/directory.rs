//! Leegality departments (seed 001) and users (contract §4).

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp, TestOrg};

on_each_backend!(
    department_seed_request_and_shape,
    department_error_paths,
    department_delete_frees_the_name_and_keeps_users,
    departments_page_and_search,
    total_users_follows_adds_moves_and_deletes,
    total_users_is_right_after_concurrent_membership_changes,
    users_crud_and_validation,
    user_search_pages_cover_every_user_once,
    another_orgs_ids_are_unknown,
);

async fn le(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let res = app.call(method, path, Auth::XAuthToken(token), body).await;
    (res.status, res.json)
}

async fn new_department(app: &TestApp, org: &TestOrg, name: &str) -> String {
    let (status, body) = le(app, Method::POST, "/api/v1/departments", &org.token, Some(json!({ "name": name }))).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

async fn new_user(app: &TestApp, org: &TestOrg, email: &str, departments: &[&str]) -> String {
    let body = json!({ "name": format!("User {email}"), "email": email, "departmentIds": departments });
    let (status, body) = le(app, Method::POST, "/api/v1/users", &org.token, Some(body)).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

async fn total_users(app: &TestApp, org: &TestOrg, id: &str) -> i64 {
    let (status, body) = le(app, Method::GET, &format!("/api/v1/departments/{id}"), &org.token, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["totalUsers"].as_i64().unwrap()
}

async fn department_seed_request_and_shape(app: TestApp) {
    let org = app.new_org().await;
    let (status, body) =
        le(&app, Method::POST, "/api/v1/departments", &org.token, Some(json!({"name": "Human Resources"}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "LE_SCS_SS_200");
    let data = body["data"].as_object().unwrap();
    assert_eq!(
        data.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"createdAt".to_owned(),
            &"enabled".to_owned(),
            &"id".to_owned(),
            &"name".to_owned(),
            &"totalUsers".to_owned()
        ])
    );
    assert_eq!(
        (data["name"].clone(), data["enabled"].clone(), data["totalUsers"].clone()),
        (json!("Human Resources"), json!(true), json!(0))
    );
    let id = data["id"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(data["createdAt"].as_str().unwrap()).is_ok());

    // The seed's sample request.
    let path = format!("/api/v1/departments/{id}");
    let (status, body) =
        le(&app, Method::PUT, &path, &org.token, Some(json!({"name": "string", "enabled": false}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["data"]["name"].clone(), body["data"]["enabled"].clone()), (json!("string"), json!(false)));
    assert_eq!(body["data"]["createdAt"], data["createdAt"]);
    let (_, body) = le(&app, Method::PUT, &path, &org.token, Some(json!({"name": "  Human Resources  "}))).await;
    assert_eq!(
        (body["data"]["name"].clone(), body["data"]["enabled"].clone()),
        (json!("Human Resources"), json!(false)),
        "trimmed; enabled kept"
    );
    let (_, got) = le(&app, Method::GET, &path, &org.token, None).await;
    assert_eq!(got["data"], body["data"]);
}

async fn department_error_paths(app: TestApp) {
    let org = app.new_org().await;
    let id = new_department(&app, &org, "Sales").await;
    let path = format!("/api/v1/departments/{id}");
    for (body, field) in [
        (json!({"name": "x"}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": "   x   "}), "name"),
        (json!({}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "Ops\r\nX"}), "name"),
        (json!({"name": "Ops", "enabled": "no"}), "enabled"),
    ] {
        for (method, url) in [(Method::POST, "/api/v1/departments"), (Method::PUT, path.as_str())] {
            let (status, json) = le(&app, method.clone(), url, &org.token, Some(body.clone())).await;
            assert_eq!(status, 400, "{method} {body}: {json}");
            assert_eq!(json["code"], "LE_ERR_SS_400");
            let message = json["errors"][0]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("Invalid value for field [{field}], ")), "{message}");
        }
    }
    let (_, json) = le(&app, Method::POST, "/api/v1/departments", &org.token, Some(json!({"name": "x"}))).await;
    assert_eq!(
        json["errors"][0]["message"],
        "Invalid value for field [name], Department name must be between 2 and 255 characters"
    );
    assert!(
        le(&app, Method::POST, "/api/v1/departments", &org.token, Some(json!({"name": "y".repeat(255)}))).await.0
            == 200
    );

    for bad in ["not-a-uuid", "0", &uuid::Uuid::now_v7().to_string()] {
        let p = format!("/api/v1/departments/{bad}");
        let expected = json!({"code": "LE_ERR_SS_404", "errors": [{"message": "Department does not exist.", "path": p, "code": "LE_ERR_SS_001"}]});
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let body = (method == Method::PUT).then(|| json!({"name": "Valid"}));
            assert_eq!(le(&app, method.clone(), &p, &org.token, body).await, (404, expected.clone()), "{method} {bad}");
        }
    }

    let (status, json) =
        le(&app, Method::POST, "/api/v1/departments", &org.token, Some(json!({"name": "SALES"}))).await;
    assert_eq!((status, json["code"].clone()), (409, json!("LE_ERR_SS_409")));
    let other = new_department(&app, &org, "Support").await;
    let (status, _) =
        le(&app, Method::PUT, &format!("/api/v1/departments/{other}"), &org.token, Some(json!({"name": "sales"})))
            .await;
    assert_eq!(status, 409, "renaming onto a taken name");
    let (status, _) = le(&app, Method::PUT, &path, &org.token, Some(json!({"name": "sALES"}))).await;
    assert_eq!(status, 200, "its own name in other case is fine");

    let res = app.call(Method::GET, "/api/v1/departments", Auth::XAuthToken("hrd_nope"), None).await;
    assert_eq!((res.status, res.json["errors"][0]["code"].clone()), (401, json!("LE_ERR_SS_303")));
    for q in ["page=0", "size=101", "page=abc", "size=-1"] {
        let (status, json) = le(&app, Method::GET, &format!("/api/v1/departments?{q}"), &org.token, None).await;
        assert_eq!((status, json["code"].clone()), (400, json!("LE_ERR_SS_400")), "{q}");
    }
}

async fn department_delete_frees_the_name_and_keeps_users(app: TestApp) {
    let org = app.new_org().await;
    let sales = new_department(&app, &org, "Sales").await;
    let ops = new_department(&app, &org, "Ops").await;
    let user = new_user(&app, &org, "ann@example.com", &[&sales, &ops]).await;
    let path = format!("/api/v1/departments/{sales}");
    let (status, body) = le(&app, Method::DELETE, &path, &org.token, None).await;
    assert_eq!((status, body), (200, json!({"code": "LE_SS_002", "message": "Requested record has been deleted."})));
    assert_eq!(le(&app, Method::GET, &path, &org.token, None).await.0, 404);
    assert_eq!(le(&app, Method::DELETE, &path, &org.token, None).await.0, 404);
    let (_, list) = le(&app, Method::GET, "/api/v1/departments", &org.token, None).await;
    assert_eq!(list["data"]["total"], 1);
    new_department(&app, &org, "sales").await;
    let (status, body) = le(&app, Method::GET, &format!("/api/v1/users/{user}"), &org.token, None).await;
    assert_eq!(status, 200, "the user stays");
    assert_eq!(body["data"]["departmentIds"], json!([ops]));
}

async fn departments_page_and_search(app: TestApp) {
    let org = app.new_org().await;
    for i in 0..25 {
        new_department(&app, &org, &format!("Dept {i:02}")).await;
    }
    new_department(&app, &org, "Sales EMEA").await;
    new_department(&app, &org, "100% Growth").await;
    let mut seen = BTreeSet::new();
    for page in 1..=3 {
        let (status, body) =
            le(&app, Method::GET, &format!("/api/v1/departments?page={page}&size=10"), &org.token, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["data"]["page"].clone(), body["data"]["size"].clone(), body["data"]["total"].clone()),
            (json!(page), json!(10), json!(27))
        );
        for item in body["data"]["items"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "listed twice");
        }
    }
    assert_eq!(seen.len(), 27);
    let search = |q: &'static str| {
        let app = &app;
        let token = org.token.clone();
        async move {
            let (_, body) = le(app, Method::GET, &format!("/api/v1/departments?search={q}"), &token, None).await;
            body["data"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("emea").await, ["Sales EMEA"]);
    assert_eq!(search("%25").await, ["100% Growth"], "% is literal");
    assert_eq!(search("_").await, Vec::<String>::new(), "_ is literal");
    assert_eq!(search("dept%200").await.len(), 10);
}

async fn total_users_follows_adds_moves_and_deletes(app: TestApp) {
    let org = app.new_org().await;
    let a = new_department(&app, &org, "Alpha").await;
    let b = new_department(&app, &org, "Beta").await;
    let u1 = new_user(&app, &org, "u1@example.com", &[&a]).await;
    let u2 = new_user(&app, &org, "u2@example.com", &[&a, &b]).await;
    new_user(&app, &org, "u3@example.com", &[]).await;
    assert_eq!((total_users(&app, &org, &a).await, total_users(&app, &org, &b).await), (2, 1));
    // Move u1 from A to B.
    let (status, _) = le(
        &app,
        Method::PUT,
        &format!("/api/v1/users/{u1}"),
        &org.token,
        Some(json!({"name": "U1", "email": "u1@example.com", "departmentIds": [b]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!((total_users(&app, &org, &a).await, total_users(&app, &org, &b).await), (1, 2));
    // PUT without departmentIds keeps them.
    le(
        &app,
        Method::PUT,
        &format!("/api/v1/users/{u1}"),
        &org.token,
        Some(json!({"name": "U1b", "email": "u1@example.com"})),
    )
    .await;
    assert_eq!(total_users(&app, &org, &b).await, 2);
    le(&app, Method::DELETE, &format!("/api/v1/users/{u2}"), &org.token, None).await;
    assert_eq!((total_users(&app, &org, &a).await, total_users(&app, &org, &b).await), (0, 1));
    let (_, list) = le(&app, Method::GET, "/api/v1/departments", &org.token, None).await;
    let totals: BTreeMap<String, i64> = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i["totalUsers"].as_i64().unwrap()))
        .collect();
    assert_eq!(totals, BTreeMap::from([("Alpha".to_owned(), 0), ("Beta".to_owned(), 1)]), "the list agrees");
}

async fn total_users_is_right_after_concurrent_membership_changes(app: TestApp) {
    let org = app.new_org().await;
    let mut depts = Vec::new();
    for name in ["D0", "D1", "D2", "D3", "D4"] {
        depts.push(new_department(&app, &org, name).await);
    }
    let users: Vec<String> = join_all((0..50).map(|i| {
        let (app, org, d) = (&app, &org, depts[i % 5].clone());
        async move { new_user(app, org, &format!("c{i}@example.com"), &[&d]).await }
    }))
    .await;
    // 50 concurrent moves: user i goes to departments (i+1)%5 and (i+2)%5.
    let moves = join_all(users.iter().enumerate().map(|(i, id)| {
        let body = json!({"name": format!("C{i}"), "email": format!("c{i}@example.com"), "departmentIds": [depts[(i + 1) % 5], depts[(i + 2) % 5]]});
        let path = format!("/api/v1/users/{id}");
        let app = &app;
        let token = org.token.clone();
        async move { le(app, Method::PUT, &path, &token, Some(body)).await.0 }
    }))
    .await;
    assert!(moves.iter().all(|s| *s == 200), "{moves:?}");
    for d in &depts {
        assert_eq!(total_users(&app, &org, d).await, 20, "each department: 10 + 10 users");
    }
    let log = app.get("/v1/audit?limit=500", &org.token).await;
    let seqs: Vec<i64> =
        log.json["items"].as_array().unwrap().iter().map(|i| i["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=107).collect::<Vec<_>>(), "2 + 5 + 50 + 50 audited changes, gapless");
}

async fn users_crud_and_validation(app: TestApp) {
    let org = app.new_org().await;
    let d = new_department(&app, &org, "Ops").await;
    let body = json!({"name": "Ann Example", "email": "Ann@Example.com", "departmentIds": [d], "locale": "de"});
    let (status, created) = le(&app, Method::POST, "/api/v1/users", &org.token, Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let user = &created["data"];
    assert_eq!(
        (user["email"].clone(), user["locale"].clone(), user["departmentIds"].clone()),
        (json!("Ann@Example.com"), json!("DE"), json!([d]))
    );
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    assert_eq!(le(&app, Method::GET, &path, &org.token, None).await.1["data"], *user);

    let (status, json) =
        le(&app, Method::POST, "/api/v1/users", &org.token, Some(json!({"name": "Dup", "email": "ann@example.COM"})))
            .await;
    assert_eq!((status, json["code"].clone()), (409, json!("LE_ERR_SS_409")), "email unique ignoring case");

    for (body, field) in [
        (json!({"email": "a@example.com"}), "name"),
        (json!({"name": "A"}), "email"),
        (json!({"name": "A", "email": "nope"}), "email"),
        (json!({"name": "A", "email": "a@example.com\r\nBcc: b@example.com"}), "email"),
        (json!({"name": "A\nB", "email": "a@example.com"}), "name"),
        (json!({"name": "A", "email": "a@example.com", "locale": "xx"}), "locale"),
        (json!({"name": "A", "email": "a@example.com", "departmentIds": ["nope"]}), "departmentIds"),
        (
            json!({"name": "A", "email": "a@example.com", "departmentIds": [uuid::Uuid::now_v7().to_string()]}),
            "departmentIds",
        ),
        (json!({"name": "A", "email": "a@example.com", "departmentIds": "x"}), "departmentIds"),
    ] {
        let (status, json) = le(&app, Method::POST, "/api/v1/users", &org.token, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {json}");
        let message = json["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("Invalid value for field [{field}]")), "{body}: {message}");
    }
    let (_, json) = le(&app, Method::POST, "/api/v1/users", &org.token, Some(json!({}))).await;
    assert_eq!(json["errors"].as_array().unwrap().len(), 2, "name and email at once");

    let (status, updated) = le(
        &app,
        Method::PUT,
        &path,
        &org.token,
        Some(json!({"name": "Ann B", "email": "ann.b@example.com", "departmentIds": []})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (updated["data"]["locale"].clone(), updated["data"]["departmentIds"].clone()),
        (json!("DE"), json!([])),
        "locale kept"
    );
    let (status, body) = le(&app, Method::DELETE, &path, &org.token, None).await;
    assert_eq!((status, body["code"].clone()), (200, json!("LE_SS_002")));
    let (status, body) = le(&app, Method::GET, &path, &org.token, None).await;
    assert_eq!((status, body["errors"][0]["message"].clone()), (404, json!("User does not exist.")));
    let log = app.get("/v1/audit", &org.token).await;
    let actions: Vec<&str> =
        log.json["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions[2..], ["department.created", "user.created", "user.replaced", "user.deleted"]);
}

async fn user_search_pages_cover_every_user_once(app: TestApp) {
    let org = app.new_org().await;
    let d = new_department(&app, &org, "Ops").await;
    for i in 0..45 {
        let depts: Vec<&str> = if i % 3 == 0 { vec![&d] } else { vec![] };
        // Repeated names make the id tie-break matter.
        let body =
            json!({"name": format!("Person {}", i % 4), "email": format!("p{i}@example.com"), "departmentIds": depts});
        assert_eq!(le(&app, Method::POST, "/api/v1/users", &org.token, Some(body)).await.0, 200);
    }
    let collect = |filter: Value| {
        let app = &app;
        let token = org.token.clone();
        async move {
            let mut seen = Vec::new();
            let mut total = 0;
            for page in 1..=10 {
                let mut body = filter.clone();
                body["page"] = json!(page);
                body["size"] = json!(7);
                let (status, res) = le(app, Method::POST, "/api/v1/users/search", &token, Some(body)).await;
                assert_eq!(status, 200, "{res}");
                let items = res["data"]["items"].as_array().unwrap().clone();
                if items.is_empty() {
                    break;
                }
                seen.extend(items.into_iter().map(|u| u["id"].as_str().unwrap().to_owned()));
                total = res["data"]["total"].as_i64().unwrap();
            }
            assert_eq!(usize::try_from(total).unwrap(), seen.len(), "total counts what the pages hold");
            seen
        }
    };
    let all = collect(json!({})).await;
    assert_eq!(all.len(), 45);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 45, "nobody twice");
    assert_eq!(collect(json!({"departmentId": d})).await.len(), 15);
    assert_eq!(collect(json!({"search": "PERSON 1"})).await.len(), 11, "i % 4 == 1 for i < 45");
    assert_eq!(collect(json!({"search": "p4"})).await.len(), 6, "p4, p40..p44 by email");
    assert_eq!(collect(json!({"departmentId": "nope"})).await.len(), 0);
    let (_, res) =
        le(&app, Method::POST, "/api/v1/users/search", &org.token, Some(json!({"departmentId": d, "size": 2}))).await;
    assert_eq!(res["data"]["items"][0]["departmentIds"], json!([d]), "memberships come with the page");
    let (status, _) = le(&app, Method::POST, "/api/v1/users/search", &org.token, Some(json!({"size": 1000}))).await;
    assert_eq!(status, 400);
}

async fn another_orgs_ids_are_unknown(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let dept = new_department(&app, &a, "Finance").await;
    let user = new_user(&app, &a, "x@example.com", &[&dept]).await;
    for (path, msg) in [
        (format!("/api/v1/departments/{dept}"), "Department does not exist."),
        (format!("/api/v1/users/{user}"), "User does not exist."),
    ] {
        for method in [Method::GET, Method::DELETE] {
            let (status, body) = le(&app, method.clone(), &path, &b.token, None).await;
            assert_eq!((status, body["errors"][0]["message"].clone()), (404, json!(msg)), "{method} {path}");
        }
    }
    let (status, _) =
        le(&app, Method::PUT, &format!("/api/v1/departments/{dept}"), &b.token, Some(json!({"name": "Mine now"})))
            .await;
    assert_eq!(status, 404);
    let (status, body) = le(
        &app,
        Method::POST,
        "/api/v1/users",
        &b.token,
        Some(json!({"name": "B", "email": "b@example.com", "departmentIds": [dept]})),
    )
    .await;
    assert_eq!(status, 400, "A's department is not B's: {body}");
    let (_, list) = le(&app, Method::GET, "/api/v1/departments", &b.token, None).await;
    assert_eq!(list["data"]["total"], 0);
    let (_, found) =
        le(&app, Method::POST, "/api/v1/users/search", &b.token, Some(json!({"departmentId": dept}))).await;
    assert_eq!(found["data"]["total"], 0);
    new_user(&app, &b, "x@example.com", &[]).await; // emails are unique per org only
    assert_eq!(total_users(&app, &a, &dept).await, 1);
}
