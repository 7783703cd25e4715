//! A client of the admin API for the end-to-end tests.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::Appliance;

/// The admin API as a client sees it: a reqwest client, the API's base URL
/// and the token from the data directory.
pub struct AdminApi {
    pub client: Client,
    pub base: String,
    pub token: String,
}

impl AdminApi {
    /// A client of `appliance`, with the token kept in `data`.
    pub fn new(appliance: &Appliance, data: &std::path::Path) -> Self {
        Self {
            client: Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base: format!("http://{}/api/v1", appliance.http),
            token: std::fs::read_to_string(data.join("api-token"))
                .expect("api-token")
                .trim()
                .to_string(),
        }
    }
    /// `rb` with the token.
    pub fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        rb.bearer_auth(&self.token)
    }
    /// GET `path` (below `/api/v1`): the status and the JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .authed(self.client.get(format!("{}{path}", self.base)))
            .send()
            .expect("GET");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
    /// Adds `domain` and an account with `password` for each of
    /// `addresses`; panics unless each is created (201).
    pub fn provision(&self, domain: &str, addresses: &[String], password: &str) {
        let (status, body) = self.post("/domains", &serde_json::json!({ "name": domain }));
        assert_eq!(status, 201, "{body}");
        for address in addresses {
            let new = serde_json::json!({ "address": address, "password": password });
            let (status, body) = self.post("/accounts", &new);
            assert_eq!(status, 201, "{address}: {body}");
        }
    }

    /// POST `path` (below `/api/v1`): the status and the JSON body.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .authed(self.client.post(format!("{}{path}", self.base)))
            .json(body)
            .send()
            .expect("POST");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
    /// PATCH `path` (below `/api/v1`): the status and the JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .authed(self.client.patch(format!("{}{path}", self.base)))
            .json(body)
            .send()
            .expect("PATCH");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
    /// DELETE `path` (below `/api/v1`): the status.
    pub fn delete(&self, path: &str) -> u16 {
        self.authed(self.client.delete(format!("{}{path}", self.base)))
            .send()
            .expect("DELETE")
            .status()
            .as_u16()
    }
}
