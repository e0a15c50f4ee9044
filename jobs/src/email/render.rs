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
