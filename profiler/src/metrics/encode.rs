//! Prometheus text or OpenMetrics, by the scraper's Accept header.
use prometheus_client::{encoding, registry::Registry};

use super::exposition::Exposition;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (what plain `curl` and older scrapers get).
    Prometheus,
    OpenMetrics,
}

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// OpenMetrics when the scraper accepts it (Prometheus asks for it
    /// first), the classic text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.split(',').any(|part| {
                    let mut params = part.split(';').map(str::trim);
                    let media = params.next().unwrap_or("");
                    // q=0 means "not acceptable".
                    media.eq_ignore_ascii_case("application/openmetrics-text")
                        && !params.any(|p| p.replace(' ', "") == "q=0")
                }) =>
            {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS,
        }
    }
}

/// The exposition as text in `format`: the hop-duration histograms first,
/// then the other families.
pub fn render(expo: Exposition, format: Format) -> Result<String, std::fmt::Error> {
    // A scrape at 64 sidecars is a few MB (a hop: up to 8 components of 29
    // lines of about 170 bytes): grow the text less often.
    let mut out = String::with_capacity(expo.hops.len() * 8 * 29 * 170 + 64 * 1024);
    super::hop_family::write(&expo, format, &mut out);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(expo));
    match format {
        Format::Prometheus => encoding::prometheus_text::encode(&mut out, &registry)?,
        Format::OpenMetrics => encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}
