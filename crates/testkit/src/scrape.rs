//! Scraping a node's `/metrics` over HTTP and parsing the Prometheus text format.

use std::{collections::HashMap, net::SocketAddr};

use crate::http_get;

/// One scrape: every sample by its printed name and labels, e.g.
/// `chorus_connections_closed_total{reason="normal"}`.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Sample -> value.
    samples: HashMap<String, f64>,
    /// Metric family -> its `# TYPE`.
    types: HashMap<String, String>,
}

impl Scrape {
    /// Scrapes `addr`'s `/metrics`, checking the status and the content type's format.
    pub async fn of(addr: SocketAddr) -> Self {
        let (status, text) = http_get(addr, "/metrics").await.expect("scraping /metrics");
        assert_eq!(status, 200, "/metrics answers 200");
        Self::parse(&text)
    }

    /// Parses the text format; panics on a line that is not a comment or a sample,
    /// or on a sample whose family has no `# TYPE`.
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                scrape.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (sample, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = sample.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| scrape.types.get(*family).is_some_and(|k| k == "histogram"))
                .unwrap_or(name);
            assert!(
                scrape.types.contains_key(family),
                "sample without # TYPE: {line:?}"
            );
            scrape.samples.insert(sample.into(), value);
        }
        scrape
    }

    /// The value of `sample` (name and labels as printed), or 0 when absent.
    pub fn get(&self, sample: &str) -> f64 {
        self.samples.get(sample).copied().unwrap_or(0.0)
    }

    /// Whether a sample of this name (any labels) is exposed.
    pub fn has_sample(&self, name: &str) -> bool {
        self.samples
            .keys()
            .any(|sample| sample.split('{').next() == Some(name))
    }

    /// Whether a metric family is exposed (with its `# TYPE`).
    pub fn has_family(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    /// The family's kind (`counter`, `gauge`, `histogram` ...).
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// How much `sample` grew since `earlier`.
    pub fn delta(&self, earlier: &Scrape, sample: &str) -> f64 {
        self.get(sample) - earlier.get(sample)
    }
}
