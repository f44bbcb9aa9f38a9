// The console's one script and one style sheet, served as
// /console/app.js and /console/style.css (console_pages.h).
#ifndef KPX_GATEWAY_CONSOLE_ASSETS_H_
#define KPX_GATEWAY_CONSOLE_ASSETS_H_

namespace kpx::gateway {

extern const char kConsoleScript[];
extern const char kConsoleStyle[];

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONSOLE_ASSETS_H_
