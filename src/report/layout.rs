//! The frame every page shares, and the only doors for markup not built by `html!`.
//!
//! Pages are written with maud's `html!` macro: every `(expr)` spliced into a page is
//! escaped as text or as a quoted attribute value, so a node name, an error, a key or a
//! value from a target, a history or a spec cannot become markup, whichever page shows it.
//! [`document`] is the one `<head>` (charset, icon, viewport, title, the stylesheet with a
//! page's own rules) around a page's body, and [`banner`] the coloured header with its
//! headline and links.
//!
//! Markup that does not come from `html!` enters a page only through the functions here,
//! each saying why it is safe: [`static_asset`] (our compiled-in CSS and scripts) and
//! [`plotters_svg`] (the plots). JSON for a `<script>` element has its own escaping,
//! [`super::escape::json_for_script`].

use super::page::CSS;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// A whole page: the shared head, `page_css` after the report stylesheet (it may override
/// it), and `body`. `verdict` becomes `body[data-verdict]` for pages about one run.
pub fn document(
    title: &str,
    page_css: &'static str,
    verdict: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                link rel="icon" href="data:,";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (static_asset(CSS)) (static_asset(page_css)) }
            }
            body data-verdict=[verdict] { (body) }
        }
    }
}

/// The coloured header of a page.
pub struct Banner<'a> {
    /// A verdict class (`valid`, `invalid`, `unknown`) that colours it, or empty.
    pub class: &'a str,
    /// A CSS colour for banners that show no verdict.
    pub background: Option<&'a str>,
    pub headline: &'a str,
    /// `id` of the headline (tests and scripts read the run page's verdict by it).
    pub headline_id: Option<&'a str>,
    pub sub: &'a str,
    pub sub_id: Option<&'a str>,
    /// Links under the headline: (href, label).
    pub nav: &'a [(&'a str, &'a str)],
}

pub fn banner(b: &Banner) -> Markup {
    html! {
        header.banner.(b.class)[!b.class.is_empty()] style=[b.background.map(|c| format!("background:{c}"))] {
            div.inner {
                div.verdict id=[b.headline_id] { (b.headline) }
                div.sub id=[b.sub_id] { (b.sub) }
                @if !b.nav.is_empty() {
                    nav { @for (href, label) in b.nav { a href=(href) { (label) } } }
                }
            }
        }
    }
}

/// A small colour square before a label; `colour` is a CSS colour we computed.
pub fn swatch(colour: &str) -> Markup {
    html! { span.swatch style={ "background:" (colour) } {} }
}

/// Our own stylesheets and scripts, compiled into the binary (`include_str!` and
/// constants): raw text of `<style>` and `<script>` elements, where escaping would break
/// them (`a > b`, `"…"`). The `'static` bound keeps strings built at run time out.
pub fn static_asset(text: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(text)
}

/// An SVG document drawn by plotters (`super::plots`), embedded in the page. Safe because
/// plotters' SVG backend escapes every text and attribute value it writes (`<`, `>`, `&`,
/// `"`), the labels included (f names and fault kinds come from the run); the rest of the
/// document is plotters' own markup.
pub fn plotters_svg(svg: &str) -> PreEscaped<&str> {
    PreEscaped(svg)
}
