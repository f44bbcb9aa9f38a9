#include "gateway/certificate_pdf.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>
#include <qrencode.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gateway/console_pages.h"
#include "gateway/console_text.h"
#include "node/statement_text.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

// A4 in points, and the page's margins.
constexpr double kWidth = 595.28, kHeight = 841.89, kMargin = 42;
constexpr double kQrSize = 118;  // the QR code's side, quiet zone included
constexpr const char* kFont = "DejaVu Sans";

std::string Day(const google::protobuf::Timestamp& t) {
  if (!node::IsSet(t)) return "";
  return absl::FormatTime("%Y-%m-%d", node::FromTimestamp(t), absl::UTCTimeZone());
}

// Writes cairo's output into a string.
cairo_status_t Append(void* out, const unsigned char* data, unsigned int n) {
  static_cast<std::string*>(out)->append(reinterpret_cast<const char*>(data), n);
  return CAIRO_STATUS_SUCCESS;
}

// The page being drawn, top to bottom: `y` is where the next text goes.
class Sheet {
 public:
  Sheet(cairo_t* cr, std::string lang) : cr_(cr), lang_(std::move(lang)) {}

  // "Exporter / Exportateur": the label in English and the second language.
  std::string Label(const char* key) const {
    const std::string en = Text("en", key);
    if (lang_ == "en") return en;
    const std::string other = Text(lang_, key);
    return other == en ? en : absl::StrCat(en, " / ", other);
  }

  // Draws `text` in a box `width` wide at (x, y); returns its height.
  double Write(double x, double y, double width, const std::string& text, double size,
               bool bold = false) {
    PangoLayout* layout = pango_cairo_create_layout(cr_);
    PangoFontDescription* font = pango_font_description_from_string(kFont);
    pango_font_description_set_absolute_size(font, size * PANGO_SCALE);
    if (bold) pango_font_description_set_weight(font, PANGO_WEIGHT_BOLD);
    pango_layout_set_font_description(layout, font);
    pango_layout_set_width(layout, static_cast<int>(width * PANGO_SCALE));
    pango_layout_set_wrap(layout, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_text(layout, text.data(), static_cast<int>(text.size()));
    cairo_move_to(cr_, x, y);
    pango_cairo_show_layout(cr_, layout);
    int w = 0, h = 0;
    pango_layout_get_size(layout, &w, &h);
    pango_font_description_free(font);
    g_object_unref(layout);
    return static_cast<double>(h) / PANGO_SCALE;
  }

  // A labelled field in the column from x, `width` wide, at y; advances
  // `*y` below it.
  void Field(double x, double width, double* y, const char* key, const std::string& value) {
    cairo_set_source_rgb(cr_, 0.35, 0.38, 0.43);
    *y += Write(x, *y, width, Label(key), 7);
    cairo_set_source_rgb(cr_, 0, 0, 0);
    *y += Write(x, *y, width, value.empty() ? "—" : value, 9.5) + 5;
  }

  void Rule(double y) {
    cairo_set_line_width(cr_, 0.6);
    cairo_move_to(cr_, kMargin, y);
    cairo_line_to(cr_, kWidth - kMargin, y);
    cairo_stroke(cr_);
  }

  // Starts a new page when fewer than `needed` points are left above the
  // bottom margin.
  void Room(double needed) {
    if (y + needed <= kHeight - kMargin) return;
    cairo_show_page(cr_);
    y = kMargin;
  }

  cairo_t* cr() { return cr_; }
  double y = kMargin;

 private:
  cairo_t* const cr_;
  const std::string lang_;
};

void Heading(Sheet& s, const v1::Certificate& c) {
  const double w = kWidth - 2 * kMargin;
  s.y += s.Write(kMargin, s.y, w * 0.62, s.Label("print.title"), 15, true) + 4;
  cairo_set_source_rgb(s.cr(), 0, 0, 0);
  double right = kMargin;
  s.Field(kMargin + w * 0.64, w * 0.36, &right, "print.number", c.number());
  if (c.type() == v1::REPLACEMENT) {
    s.Field(kMargin + w * 0.64, w * 0.36, &right, "cert.replaces", c.replaces());
  }
  s.y = std::max(s.y, right) + 4;
  s.Rule(s.y);
  s.y += 8;
}

// Two columns of fields: the Participants, dates, office and official.
void Issue(Sheet& s, const v1::Certificate& c) {
  const double half = (kWidth - 2 * kMargin) / 2;
  double left = s.y, right = s.y;
  s.Field(kMargin, half - 10, &left, "cert.exporter", c.exporting_participant());
  s.Field(kMargin, half - 10, &left, "cert.issued", Day(c.issued_at()));
  s.Field(kMargin, half - 10, &left, "cert.office", c.issuing_office());
  s.Field(kMargin + half, half, &right, "cert.importer", c.importing_participant());
  s.Field(kMargin + half, half, &right, "cert.expires", Day(c.expires_at()));
  s.Field(kMargin + half, half, &right, "cert.official", c.validating_official());
  s.y = std::max(left, right);
}

void Parties(Sheet& s, const v1::Certificate& c) {
  const double half = (kWidth - 2 * kMargin) / 2;
  double left = s.y, right = s.y;
  auto party = [&](const v1::Party& p) {
    std::string text = absl::StrCat(p.name(), "\n", p.address(), "\n", p.country());
    if (!p.registration().empty()) absl::StrAppend(&text, " · ", p.registration());
    return text;
  };
  s.Field(kMargin, half - 10, &left, "issue.exporter_party", party(c.exporter()));
  s.Field(kMargin + half, half, &right, "issue.importer_party", party(c.importer()));
  s.y = std::max(left, right) + 2;
}

// The goods table, a row per line, then the totals and parcels.
void Goods(Sheet& s, const v1::Certificate& c) {
  const double w = kWidth - 2 * kMargin;
  const double columns[] = {0, 0.14, 0.30, 0.48, 0.76};  // HS, carats, value, origin, quality
  const char* heads[] = {"cert.hs", "cert.carats", "cert.value", "issue.origin", "issue.quality"};
  s.Room(60);
  s.Rule(s.y);
  s.y += 4;
  double tallest = 0;
  for (int i = 0; i < 5; ++i) {
    const double width = ((i < 4 ? columns[i + 1] : 1.0) - columns[i]) * w - 6;
    tallest = std::max(tallest,
                       s.Write(kMargin + columns[i] * w, s.y, width, s.Label(heads[i]), 7, true));
  }
  s.y += tallest + 3;
  for (const v1::CertificateLine& l : c.lines()) {
    s.Room(30);
    const std::string cells[] = {l.hs_code(), Hundredths(l.carats_hundredths()),
                                 Hundredths(l.value_usd_cents()), OriginText(l.origin(), "*****"),
                                 l.quality()};
    tallest = 0;
    for (int i = 0; i < 5; ++i) {
      const double width = ((i < 4 ? columns[i + 1] : 1.0) - columns[i]) * w - 6;
      tallest = std::max(tallest, s.Write(kMargin + columns[i] * w, s.y, width, cells[i], 9));
    }
    s.y += tallest + 3;
  }
  s.Room(40);
  s.Rule(s.y);
  s.y += 3;
  s.Write(kMargin, s.y, columns[1] * w, s.Label("print.totals"), 8, true);
  s.Write(kMargin + columns[1] * w, s.y, 0.16 * w, Hundredths(c.total_carats_hundredths()), 9,
          true);
  s.y += s.Write(kMargin + columns[2] * w, s.y, 0.18 * w, Hundredths(c.total_value_usd_cents()), 9,
                 true) +
         6;
  s.Field(kMargin, w, &s.y, "cert.parcels", absl::StrCat(c.number_of_parcels()));
}

void Shipment(Sheet& s, const v1::Certificate& c) {
  const double w = kWidth - 2 * kMargin;
  const v1::Shipment& sh = c.shipment();
  s.Room(80);
  double left = s.y, right = s.y;
  s.Field(kMargin, w / 2 - 10, &left, "print.seals", absl::StrJoin(sh.seal_numbers(), ", "));
  s.Field(kMargin, w / 2 - 10, &left, "print.transit",
          absl::StrJoin(sh.transit_countries(), " → "));
  s.Field(kMargin + w / 2, w / 2, &right, "print.waybill", sh.transport_document());
  s.Field(kMargin + w / 2, w / 2, &right, "issue.container",
          absl::StrJoin({sh.container(), sh.courier()}, " · "));
  s.y = std::max(left, right);
  if (c.provenance_size() > 0) {
    std::vector<std::string> refs;
    for (const v1::CertificateReference& r : c.provenance()) {
      refs.push_back(absl::StrCat(r.number(), " (", r.participant(), ")"));
    }
    s.Room(30);
    s.Field(kMargin, w, &s.y, "issue.provenance", absl::StrJoin(refs, ", "));
  }
  if (!c.remarks().empty()) {
    s.Room(30);
    s.Field(kMargin, w, &s.y, "issue.remarks", c.remarks());
  }
}

// The QR code of `payload`, its top-left corner at (x, y).
absl::Status Qr(cairo_t* cr, double x, double y, const std::string& payload) {
  std::unique_ptr<QRcode, void (*)(QRcode*)> qr(
      QRcode_encodeString8bit(payload.c_str(), 0, QR_ECLEVEL_M), QRcode_free);
  if (qr == nullptr) return absl::InternalError("libqrencode cannot encode the attestation");
  const int quiet = 4;
  const double module = kQrSize / (qr->width + 2 * quiet);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_rectangle(cr, x, y, kQrSize, kQrSize);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  for (int row = 0; row < qr->width; ++row) {
    for (int col = 0; col < qr->width; ++col) {
      if ((qr->data[row * qr->width + col] & 1) == 0) continue;
      cairo_rectangle(cr, x + (col + quiet) * module, y + (row + quiet) * module, module, module);
    }
  }
  cairo_fill(cr);
  return absl::OkStatus();
}

// The statement, then the QR code beside its short code, how to check it
// and the official's signature line.
absl::Status Closing(Sheet& s, const PrintRequest& r) {
  const double w = kWidth - 2 * kMargin;
  const v1::Certificate& c = r.record.certificate();
  s.Room(40);
  s.y += 4;
  s.y += s.Write(kMargin, s.y, w, node::StatementText(c.statement()), 8) + 10;
  s.Room(kQrSize + 10);
  if (absl::Status st = Qr(s.cr(), kMargin, s.y, r.attestation.payload()); !st.ok()) return st;
  const double x = kMargin + kQrSize + 14, width = w - kQrSize - 14;
  double y = s.y + 6;
  s.Field(x, width, &y, "print.code", r.attestation.short_code());
  y += s.Write(x, y, width, s.Label("print.verify"), 7.5) + 14;
  cairo_set_line_width(s.cr(), 0.6);
  cairo_move_to(s.cr(), x, y + 18);
  cairo_line_to(s.cr(), x + std::min(width, 240.0), y + 18);
  cairo_stroke(s.cr());
  s.Write(x, y + 21, width, absl::StrCat(s.Label("print.signature"), "\n", c.validating_official()),
          7.5);
  s.y += kQrSize;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CertificatePdf(const PrintRequest& request) {
  std::string out;
  cairo_surface_t* surface = cairo_pdf_surface_create_for_stream(Append, &out, kWidth, kHeight);
  // Dates from the record, not the clock: the same record prints the same.
  const v1::Certificate& c = request.record.certificate();
  const std::string date = absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ", node::FromTimestamp(c.issued_at()), absl::UTCTimeZone());
  cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATE_DATE, date.c_str());
  cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_MOD_DATE, date.c_str());
  const std::string title = absl::StrCat("Kimberley Process Certificate ", c.number());
  cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title.c_str());
  cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "kpx");
  cairo_t* cr = cairo_create(surface);
  Sheet sheet(cr, FindLanguage(request.lang).code);
  cairo_set_source_rgb(cr, 0, 0, 0);
  Heading(sheet, c);
  Issue(sheet, c);
  Parties(sheet, c);
  Goods(sheet, c);
  Shipment(sheet, c);
  absl::Status drawn = Closing(sheet, request);
  cairo_destroy(cr);
  cairo_surface_finish(surface);
  const cairo_status_t status = cairo_surface_status(surface);
  cairo_surface_destroy(surface);
  if (!drawn.ok()) return drawn;
  if (status != CAIRO_STATUS_SUCCESS) {
    return absl::InternalError(absl::StrCat("cairo: ", cairo_status_to_string(status)));
  }
  return out;
}

}  // namespace kpx::gateway
