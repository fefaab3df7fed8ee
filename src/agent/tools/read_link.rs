//! `read_link`: fetch a web page and return its readable text — summarised
//! by the chat model when it is long and a model is configured.
//!
//! Safety (SSRF): only `http`/`https`; the host is resolved here and every
//! resolved address must pass the [`AddressPolicy`] (public unicast only by
//! default), and the connection goes to exactly the checked address
//! (reqwest `resolve`), so DNS cannot change between check and connect.
//! Redirects are followed by hand (at most [`MAX_REDIRECTS`]) and every hop is
//! checked again. Bodies are counted while streaming and cut at the size cap;
//! each attempt has the service's time limit. Proxies from the environment
//! are ignored (a proxy would connect on our behalf, unchecked).

mod address;
mod html;

pub use address::{AddressPolicy, Resolver, SystemResolver, is_public};
pub use html::{Extract, extract};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;

use super::resilience::ExternalService;
use super::{ToolContext, ToolError, TypedTool};
use crate::llm::transport::{classify_reqwest_error, classify_status, client_builder, truncate_chars};
use crate::llm::{ChatModel, ChatRequest, LlmError, Message};

/// Most redirects followed for one link.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadLinkInput {
    /// The http:// or https:// address of the page to read.
    pub url: String,
}

/// Limits for fetching pages.
#[derive(Debug, Clone, Copy)]
pub struct ReadLinkLimits {
    pub max_bytes: usize,
    /// Longer extracts are summarised (or cut when there is no model).
    pub max_chars: usize,
}

/// The model that summarises long pages.
#[derive(Clone)]
pub struct Summarizer {
    pub model: Arc<dyn ChatModel>,
    pub model_name: String,
}

#[derive(Clone)]
pub struct ReadLink {
    limits: ReadLinkLimits,
    service: ExternalService,
    policy: AddressPolicy,
    resolver: Arc<dyn Resolver>,
    summarizer: Option<Summarizer>,
}

/// What a fetch produced: a page, or a refusal that is no fault of the site.
type Fetched = Result<Page, String>;

#[derive(Debug)]
struct Page {
    url: Url,
    content_type: String,
    body: Vec<u8>,
}

/// What a fetch accepts: a text page (`read_link`) or an image (`analyze_image`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Text,
    Image,
}

impl BodyKind {
    fn accept_header(self) -> &'static str {
        match self {
            BodyKind::Text => "text/html, text/plain;q=0.9, */*;q=0.1",
            BodyKind::Image => "image/png, image/jpeg, image/gif, image/webp",
        }
    }

    /// `None` if the content type is acceptable, else the refusal.
    fn refuse(self, content_type: &str) -> Option<String> {
        let ok = match self {
            BodyKind::Text => {
                content_type.starts_with("text/") || content_type.contains("html") || content_type.contains("xml")
            }
            BodyKind::Image => content_type.starts_with("image/"),
        };
        let what = match self {
            BodyKind::Text => "a text page",
            BodyKind::Image => "an image",
        };
        (!ok).then(|| format!("the link is not {what} ({content_type})"))
    }
}

impl ReadLink {
    /// The production tool: public addresses only, the system resolver.
    pub fn new(limits: ReadLinkLimits, service: ExternalService, summarizer: Option<Summarizer>) -> Self {
        Self::with_network(limits, service, summarizer, AddressPolicy::public_only(), Arc::new(SystemResolver))
    }

    /// With an explicit address policy and resolver (tests use this to reach a local page server).
    pub fn with_network(
        limits: ReadLinkLimits,
        service: ExternalService,
        summarizer: Option<Summarizer>,
        policy: AddressPolicy,
        resolver: Arc<dyn Resolver>,
    ) -> Self {
        Self { limits, service, policy, resolver, summarizer }
    }

    /// Check a URL and pick the checked address to connect to.
    async fn checked_address(&self, url: &Url) -> Result<SocketAddr, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("only http:// and https:// links can be read, not {}:", url.scheme()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let addresses: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => self
                .resolver
                .resolve(name, port)
                .await
                .map_err(|error| format!("the host {name} could not be resolved: {error}"))?,
            None => return Err("the link has no host".into()),
        };
        if addresses.is_empty() {
            return Err("the host has no addresses".into());
        }
        if let Some(bad) = addresses.iter().find(|address| !self.policy.allows(address.ip())) {
            return Err(format!(
                "refusing to read {}: it points to a private or local address ({})",
                url.host_str().unwrap_or_default(),
                bad.ip()
            ));
        }
        Ok(addresses[0])
    }

    /// One attempt: follow redirects by hand, checking every hop.
    async fn fetch(&self, start: &Url, kind: BodyKind) -> Result<Fetched, LlmError> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let address = match self.checked_address(&url).await {
                Ok(address) => address,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let mut builder = client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(self.service.policy().attempt_timeout)
                .user_agent(concat!("valor/", env!("CARGO_PKG_VERSION"), " (read_link)"));
            if let Some(url::Host::Domain(name)) = url.host() {
                builder = builder.resolve(name, address);
            }
            let client = builder.build().map_err(|error| LlmError::Network(error.to_string()))?;
            let response = client
                .get(url.clone())
                .header("accept", kind.accept_header())
                .send()
                .await
                .map_err(|error| classify_reqwest_error(&error))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers().get("location").and_then(|value| value.to_str().ok());
                let Some(next) = location.and_then(|location| url.join(location).ok()) else {
                    return Ok(Err(format!("the page redirects without a valid location (HTTP {status})")));
                };
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(match status.as_u16() {
                    404 | 410 => LlmError::BadRequest(format!("the page does not exist (HTTP {status})")),
                    code => classify_status(code, None, ""),
                });
            }
            return self.read_body(url, response, kind).await;
        }
        Ok(Err(format!("the link redirects more than {MAX_REDIRECTS} times")))
    }

    async fn read_body(&self, url: Url, mut response: reqwest::Response, kind: BodyKind) -> Result<Fetched, LlmError> {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("text/html")
            .to_ascii_lowercase();
        if let Some(refusal) = kind.refuse(&content_type) {
            return Ok(Err(refusal));
        }
        let too_large = || Ok(Err(format!("the page is larger than {} bytes; not read", self.limits.max_bytes)));
        if response.content_length().is_some_and(|length| length > self.limits.max_bytes as u64) {
            return too_large();
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| classify_reqwest_error(&error))? {
            if body.len() + chunk.len() > self.limits.max_bytes {
                return too_large();
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Ok(Page { url, content_type, body }))
    }

    /// Fetch an image from a link with the same address checks, redirect
    /// handling, size cap and breaker as pages (used by `analyze_image`).
    pub async fn fetch_image(&self, link: &str) -> Result<Vec<u8>, ToolError> {
        let url = Url::parse(link.trim())
            .map_err(|error| ToolError::RespondToModel(format!("that is not a valid link: {error}")))?;
        let page = self.service.call(|| self.fetch(&url, BodyKind::Image)).await?.map_err(ToolError::RespondToModel)?;
        Ok(page.body)
    }

    async fn summarise(&self, title: Option<&str>, text: &str) -> Option<String> {
        let summarizer = self.summarizer.as_ref()?;
        let excerpt = truncate_chars(text, self.limits.max_chars * 4);
        let prompt = format!(
            "Summarise this web page in at most 12 short bullet points, keeping names, numbers and dates.\n\n\
             Title: {}\n\n{excerpt}",
            title.unwrap_or("(none)")
        );
        let request = ChatRequest::new(
            summarizer.model_name.clone(),
            "You summarise web pages faithfully.",
            vec![Message::user_text(prompt)],
        );
        match summarizer.model.complete(&request).await {
            Ok(response) => Some(response.message.text()).filter(|text| !text.trim().is_empty()),
            Err(error) => {
                tracing::warn!(%error, "read_link could not summarise; returning the extract");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl TypedTool for ReadLink {
    type Input = ReadLinkInput;
    const NAME: &'static str = "read_link";
    const DESCRIPTION: &'static str = "Read a web page (http/https link) and return its readable text, \
        summarised when long. Use it when the user shares a link or asks what a page says.";

    /// A possible summary by the small-tier model; free without a model.
    fn cost_microusd(&self) -> u64 {
        if self.summarizer.is_some() { 2_000 } else { 0 }
    }

    async fn run(&self, _context: &ToolContext, input: ReadLinkInput) -> Result<String, ToolError> {
        let url = Url::parse(input.url.trim())
            .map_err(|error| ToolError::RespondToModel(format!("that is not a valid link: {error}")))?;
        let page = self.service.call(|| self.fetch(&url, BodyKind::Text)).await?.map_err(ToolError::RespondToModel)?;
        let body = String::from_utf8_lossy(&page.body);
        let extract = if page.content_type.contains("html") {
            extract(&body)
        } else {
            Extract { title: None, text: body.trim().to_owned() }
        };
        let mut header = format!("URL: {}", page.url);
        if let Some(title) = &extract.title {
            header = format!("Title: {title}\n{header}");
        }
        if extract.text.is_empty() {
            return Ok(format!("{header}\n\nThe page has no readable text."));
        }
        if extract.text.chars().count() <= self.limits.max_chars {
            return Ok(format!("{header}\n\n{}", extract.text));
        }
        match self.summarise(extract.title.as_deref(), &extract.text).await {
            Some(summary) => Ok(format!("{header}\nSummary of a long page:\n\n{summary}")),
            None => Ok(format!("{header}\n\n{}", truncate_chars(&extract.text, self.limits.max_chars))),
        }
    }
}
