//! Rendering from `templates/`: the report (a plain-text and an HTML part), the confirmation
//! email and the small subscription pages. Templates are askama (compiled in, checked at build
//! time); `.html` templates escape every value, `.txt` ones do not. The report's parts read the
//! view model the report page reads ([`crate::report::view::ReportView`]): formatting, links and
//! the wording of gate events are the same as on the pages; only the templates differ.
use crate::report::view::ReportView;
use askama::Template;

#[derive(Template)]
#[template(path = "email/report.txt")]
struct ReportText<'a> {
    r: &'a ReportView,
    public_url: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/report.html")]
struct ReportHtml<'a> {
    r: &'a ReportView,
    public_url: &'a str,
    unsubscribe_url: &'a str,
}

/// The two parts of one report email.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// "October 2026: raised 1,234.56 EUR, spent 306.00 EUR".
pub fn subject(view: &ReportView) -> String {
    let f = &view.fig;
    format!(
        "{}: raised {} {}, spent {} {}",
        f.month_label, f.raised, f.currency, f.spent, f.currency
    )
}

/// The report email of `view`, with links to the public books and to unsubscribe.
pub fn report(
    view: &ReportView,
    public_url: &str,
    unsubscribe_url: &str,
) -> Result<Rendered, askama::Error> {
    Ok(Rendered {
        subject: subject(view),
        text: ReportText {
            r: view,
            public_url,
            unsubscribe_url,
        }
        .render()?,
        html: ReportHtml {
            r: view,
            public_url,
            unsubscribe_url,
        }
        .render()?,
    })
}

/// A month's report laid out once for every subscriber: both parts rendered with a stand-in for
/// the unsubscribe link, cut where it stands, and joined again around each subscriber's link
/// ([`ReportParts::fill`]), which gives the same bytes as rendering the templates for that
/// subscriber ([`report`]). The link is the only thing in the parts that differs between
/// subscribers.
#[derive(Clone, Debug)]
pub struct ReportParts {
    subject: String,
    /// The plain-text part around the link (the link goes between two pieces).
    text: Vec<String>,
    /// The HTML part around the link (HTML-escaped, as the template escapes it).
    html: Vec<String>,
}

/// The link as the HTML template writes it: escaped by askama's own HTML escaper.
#[derive(Template)]
#[template(source = "{{ unsubscribe_url }}", ext = "html")]
struct EscapedLink<'a> {
    unsubscribe_url: &'a str,
}

impl ReportParts {
    /// Renders `view` twice, with two stand-ins of different lengths, and keeps the pieces
    /// around them; `None` when the pieces differ (a stand-in also appearing in the figures,
    /// say), and then each subscriber's parts are rendered whole.
    pub fn new(view: &ReportView, public_url: &str) -> Result<Option<ReportParts>, askama::Error> {
        const A: &str = "\u{1}unsubscribe-link-a\u{1}";
        const B: &str = "\u{2}unsubscribe-link-bb\u{2}";
        let a = report(view, public_url, A)?;
        let b = report(view, public_url, B)?;
        let cut = |s: &str, at: &str| s.split(at).map(str::to_string).collect::<Vec<_>>();
        let (text, html) = (cut(&a.text, A), cut(&a.html, A));
        if text != cut(&b.text, B) || html != cut(&b.html, B) {
            return Ok(None);
        }
        Ok(Some(ReportParts {
            subject: a.subject,
            text,
            html,
        }))
    }

    /// The parts of one subscriber's report, byte for byte what [`report`] renders for the
    /// same view, public URL and link.
    pub fn fill(&self, unsubscribe_url: &str) -> Result<Rendered, askama::Error> {
        let escaped = EscapedLink { unsubscribe_url }.render()?;
        Ok(Rendered {
            subject: self.subject.clone(),
            text: self.text.join(unsubscribe_url),
            html: self.html.join(escaped.as_str()),
        })
    }
}

#[derive(Template)]
#[template(path = "email/confirm.txt")]
struct ConfirmText<'a> {
    confirm_url: &'a str,
    public_url: &'a str,
    hours: i64,
}

#[derive(Template)]
#[template(path = "email/confirm.html")]
struct ConfirmHtml<'a> {
    confirm_url: &'a str,
    public_url: &'a str,
    hours: i64,
}

pub fn confirmation(confirm_url: &str, public_url: &str) -> Result<Rendered, askama::Error> {
    let hours = super::links::CONFIRM_TTL_SECONDS / 3600;
    Ok(Rendered {
        subject: "Confirm your subscription to the build farm's monthly report".into(),
        text: ConfirmText {
            confirm_url,
            public_url,
            hours,
        }
        .render()?,
        html: ConfirmHtml {
            confirm_url,
            public_url,
            hours,
        }
        .render()?,
    })
}

/// A small HTML page answering a subscription request (`templates/subscribe/page.html`).
#[derive(Template)]
#[template(path = "subscribe/page.html")]
pub struct Page {
    pub title: String,
    pub paragraphs: Vec<String>,
    /// A button that POSTs here (the unsubscribe confirmation), with its label.
    pub form: Option<(String, String)>,
    pub public_url: String,
}

impl Page {
    pub fn new(title: impl Into<String>, paragraphs: &[&str], public_url: &str) -> Page {
        Page {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            form: None,
            public_url: public_url.to_string(),
        }
    }

    pub fn html(&self) -> String {
        self.render()
            .unwrap_or_else(|e| format!("<!doctype html><title>error</title><p>{e}</p>"))
    }
}
