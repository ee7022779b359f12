//! The one font plots are drawn with, compiled into the binary.
//!
//! plotters is built with its `ab_glyph` backend instead of font-kit, so PNG text needs no
//! system font and no fontconfig: a CI machine or a container without fonts renders the
//! same labels. SVG plots name the family `sans-serif` and let the browser pick; plotters
//! still measures their labels with this font for layout. DejaVu Sans's licence
//! (Bitstream Vera terms) allows bundling it unchanged: `assets/DejaVuSans-LICENSE.txt`.

use anyhow::{anyhow, Result};
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The family name plots ask for.
pub const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("assets/DejaVuSans.ttf");

/// Register the bundled font with plotters (once per process; later calls are free).
pub fn ensure_registered() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
            && plotters::style::register_font(FAMILY, FontStyle::Bold, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the bundled plot font (DejaVuSans.ttf) could not be parsed"
        ))
    }
}
