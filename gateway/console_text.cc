#include "gateway/console_text.h"

#include <map>

namespace kpx::gateway {
namespace {

using Catalogue = std::map<std::string, std::string, std::less<>>;

// English: the reference every other catalogue is checked against.
const Catalogue& English() {
  static const auto* c = new Catalogue{
      {"app.title", "Kimberley Process certificates"},
      {"nav.dashboard", "Dashboard"},
      {"nav.certificates", "Certificates"},
      {"nav.sign_out", "Sign out"},
      {"nav.language", "Language"},
      {"who.signed_in", "Signed in as"},
      {"signin.title", "Sign in"},
      {"signin.name", "Name"},
      {"signin.password", "Password"},
      {"signin.code", "Code from your authenticator app"},
      {"signin.submit", "Sign in"},
      {"dash.title", "Dashboard"},
      {"dash.by_state", "Certificates by state"},
      {"dash.awaiting", "Awaiting the importing authority"},
      {"dash.overdue", "Overdue"},
      {"dash.discrepancies", "Confirmed with discrepancies"},
      {"dash.activity", "Live activity"},
      {"list.title", "Certificates"},
      {"list.number", "Number"},
      {"list.partner", "Partner"},
      {"list.state", "State"},
      {"list.issued", "Issued"},
      {"list.show", "Show"},
      {"list.all", "All states"},
      {"list.next", "Next page"},
      {"list.none", "No certificates."},
      {"cert.title", "Certificate"},
      {"cert.exporter", "Exporting Participant"},
      {"cert.importer", "Importing Participant"},
      {"cert.issued", "Issued"},
      {"cert.expires", "Expires"},
      {"cert.office", "Issuing office"},
      {"cert.official", "Validating official"},
      {"cert.goods", "Goods"},
      {"cert.hs", "HS code"},
      {"cert.carats", "Carats"},
      {"cert.value", "Value (USD)"},
      {"cert.parcels", "Parcels"},
      {"cert.journey", "Journey"},
      {"cert.by", "by"},
      {"cert.replaced_by", "Replaced by"},
      {"cert.replaces", "Replaces"},
      {"cert.discrepancies", "Differences found on arrival"},
      {"cert.evidence", "Evidence bundle (JSON)"},
      {"act.confirm", "Confirm receipt as declared"},
      {"act.remarks", "Remarks"},
      {"act.reject", "Reject the shipment"},
      {"act.cancel", "Cancel the certificate"},
      {"act.reason", "Reason"},
      {"error.title", "This did not work"},
      {"error.not_found", "There is no such page."},
      {"state.ISSUED", "Issued"},
      {"state.DELIVERED", "Delivered"},
      {"state.RECEIVED", "Received"},
      {"state.CONFIRMED", "Confirmed"},
      {"state.REJECTED", "Rejected"},
      {"state.CANCELLED", "Cancelled"},
      {"state.EXPIRED", "Expired"},
      {"state.REPLACED", "Replaced"},
      {"state.VOIDED", "Voided"},
      {"state.DISPUTED", "Disputed"},
      {"state.REFUSED", "Refused by the importer's node"},
      {"role.EXPORTER", "Exporting authority"},
      {"role.IMPORTER", "Importing authority"},
      {"role.AUDITOR", "Auditor"},
      {"role.OPERATOR", "Operator"},
  };
  return *c;
}

const Catalogue& French() {
  static const auto* c = new Catalogue{
      {"app.title", "Certificats du Processus de Kimberley"},
      {"nav.dashboard", "Tableau de bord"},
      {"nav.certificates", "Certificats"},
      {"nav.sign_out", "Se déconnecter"},
      {"nav.language", "Langue"},
      {"who.signed_in", "Connecté en tant que"},
      {"signin.title", "Connexion"},
      {"signin.name", "Nom"},
      {"signin.password", "Mot de passe"},
      {"signin.code", "Code de votre application d'authentification"},
      {"signin.submit", "Se connecter"},
      {"dash.title", "Tableau de bord"},
      {"dash.by_state", "Certificats par état"},
      {"dash.awaiting", "En attente de l'autorité importatrice"},
      {"dash.overdue", "En retard"},
      {"dash.discrepancies", "Confirmés avec écarts"},
      {"dash.activity", "Activité en direct"},
      {"list.title", "Certificats"},
      {"list.number", "Numéro"},
      {"list.partner", "Partenaire"},
      {"list.state", "État"},
      {"list.issued", "Délivré le"},
      {"list.show", "Afficher"},
      {"list.all", "Tous les états"},
      {"list.next", "Page suivante"},
      {"list.none", "Aucun certificat."},
      {"cert.title", "Certificat"},
      {"cert.exporter", "Participant exportateur"},
      {"cert.importer", "Participant importateur"},
      {"cert.issued", "Délivré le"},
      {"cert.expires", "Expire le"},
      {"cert.office", "Bureau émetteur"},
      {"cert.official", "Agent validateur"},
      {"cert.goods", "Marchandises"},
      {"cert.hs", "Code SH"},
      {"cert.carats", "Carats"},
      {"cert.value", "Valeur (USD)"},
      {"cert.parcels", "Colis"},
      {"cert.journey", "Parcours"},
      {"cert.by", "par"},
      {"cert.replaced_by", "Remplacé par"},
      {"cert.replaces", "Remplace"},
      {"cert.discrepancies", "Écarts constatés à l'arrivée"},
      {"cert.evidence", "Dossier de preuves (JSON)"},
      {"act.confirm", "Confirmer la réception conforme"},
      {"act.remarks", "Observations"},
      {"act.reject", "Refuser l'envoi"},
      {"act.cancel", "Annuler le certificat"},
      {"act.reason", "Motif"},
      {"error.title", "Cela n'a pas fonctionné"},
      {"error.not_found", "Cette page n'existe pas."},
      {"state.ISSUED", "Délivré"},
      {"state.DELIVERED", "Transmis"},
      {"state.RECEIVED", "Reçu"},
      {"state.CONFIRMED", "Confirmé"},
      {"state.REJECTED", "Refusé"},
      {"state.CANCELLED", "Annulé"},
      {"state.EXPIRED", "Expiré"},
      {"state.REPLACED", "Remplacé"},
      {"state.VOIDED", "Invalidé"},
      {"state.DISPUTED", "Contesté"},
      {"state.REFUSED", "Refusé par le nœud importateur"},
      {"role.EXPORTER", "Autorité exportatrice"},
      {"role.IMPORTER", "Autorité importatrice"},
      {"role.AUDITOR", "Auditeur"},
      {"role.OPERATOR", "Opérateur"},
  };
  return *c;
}

const Catalogue& Portuguese() {
  static const auto* c = new Catalogue{
      {"app.title", "Certificados do Processo de Kimberley"},
      {"nav.dashboard", "Painel"},
      {"nav.certificates", "Certificados"},
      {"nav.sign_out", "Terminar sessão"},
      {"nav.language", "Idioma"},
      {"who.signed_in", "Sessão iniciada como"},
      {"signin.title", "Iniciar sessão"},
      {"signin.name", "Nome"},
      {"signin.password", "Palavra-passe"},
      {"signin.code", "Código da sua aplicação de autenticação"},
      {"signin.submit", "Entrar"},
      {"dash.title", "Painel"},
      {"dash.by_state", "Certificados por estado"},
      {"dash.awaiting", "À espera da autoridade importadora"},
      {"dash.overdue", "Em atraso"},
      {"dash.discrepancies", "Confirmados com divergências"},
      {"dash.activity", "Atividade em direto"},
      {"list.title", "Certificados"},
      {"list.number", "Número"},
      {"list.partner", "Parceiro"},
      {"list.state", "Estado"},
      {"list.issued", "Emitido em"},
      {"list.show", "Mostrar"},
      {"list.all", "Todos os estados"},
      {"list.next", "Página seguinte"},
      {"list.none", "Nenhum certificado."},
      {"cert.title", "Certificado"},
      {"cert.exporter", "Participante exportador"},
      {"cert.importer", "Participante importador"},
      {"cert.issued", "Emitido em"},
      {"cert.expires", "Válido até"},
      {"cert.office", "Serviço emissor"},
      {"cert.official", "Funcionário validador"},
      {"cert.goods", "Mercadorias"},
      {"cert.hs", "Código SH"},
      {"cert.carats", "Quilates"},
      {"cert.value", "Valor (USD)"},
      {"cert.parcels", "Volumes"},
      {"cert.journey", "Percurso"},
      {"cert.by", "por"},
      {"cert.replaced_by", "Substituído por"},
      {"cert.replaces", "Substitui"},
      {"cert.discrepancies", "Divergências verificadas à chegada"},
      {"cert.evidence", "Pacote de provas (JSON)"},
      {"act.confirm", "Confirmar a receção conforme declarado"},
      {"act.remarks", "Observações"},
      {"act.reject", "Recusar a remessa"},
      {"act.cancel", "Anular o certificado"},
      {"act.reason", "Motivo"},
      {"error.title", "Não foi possível"},
      {"error.not_found", "Esta página não existe."},
      {"state.ISSUED", "Emitido"},
      {"state.DELIVERED", "Entregue"},
      {"state.RECEIVED", "Recebido"},
      {"state.CONFIRMED", "Confirmado"},
      {"state.REJECTED", "Recusado"},
      {"state.CANCELLED", "Anulado"},
      {"state.EXPIRED", "Expirado"},
      {"state.REPLACED", "Substituído"},
      {"state.VOIDED", "Invalidado"},
      {"state.DISPUTED", "Em litígio"},
      {"state.REFUSED", "Recusado pelo nó importador"},
      {"role.EXPORTER", "Autoridade exportadora"},
      {"role.IMPORTER", "Autoridade importadora"},
      {"role.AUDITOR", "Auditor"},
      {"role.OPERATOR", "Operador"},
  };
  return *c;
}

const Catalogue& Arabic() {
  static const auto* c = new Catalogue{
      {"app.title", "شهادات عملية كيمبرلي"},
      {"nav.dashboard", "لوحة المتابعة"},
      {"nav.certificates", "الشهادات"},
      {"nav.sign_out", "تسجيل الخروج"},
      {"nav.language", "اللغة"},
      {"who.signed_in", "مسجّل الدخول باسم"},
      {"signin.title", "تسجيل الدخول"},
      {"signin.name", "الاسم"},
      {"signin.password", "كلمة المرور"},
      {"signin.code", "الرمز من تطبيق المصادقة"},
      {"signin.submit", "دخول"},
      {"dash.title", "لوحة المتابعة"},
      {"dash.by_state", "الشهادات حسب الحالة"},
      {"dash.awaiting", "بانتظار سلطة الاستيراد"},
      {"dash.overdue", "متأخرة"},
      {"dash.discrepancies", "مؤكدة مع فروق"},
      {"dash.activity", "النشاط المباشر"},
      {"list.title", "الشهادات"},
      {"list.number", "الرقم"},
      {"list.partner", "الشريك"},
      {"list.state", "الحالة"},
      {"list.issued", "تاريخ الإصدار"},
      {"list.show", "عرض"},
      {"list.all", "كل الحالات"},
      {"list.next", "الصفحة التالية"},
      {"list.none", "لا توجد شهادات."},
      {"cert.title", "شهادة"},
      {"cert.exporter", "المشارك المصدِّر"},
      {"cert.importer", "المشارك المستورِد"},
      {"cert.issued", "تاريخ الإصدار"},
      {"cert.expires", "تاريخ الانتهاء"},
      {"cert.office", "مكتب الإصدار"},
      {"cert.official", "الموظف المصادِق"},
      {"cert.goods", "البضائع"},
      {"cert.hs", "رمز النظام المنسق"},
      {"cert.carats", "القيراط"},
      {"cert.value", "القيمة (دولار أمريكي)"},
      {"cert.parcels", "الطرود"},
      {"cert.journey", "المسار"},
      {"cert.by", "بواسطة"},
      {"cert.replaced_by", "استُبدلت بـ"},
      {"cert.replaces", "تحل محل"},
      {"cert.discrepancies", "الفروق المكتشفة عند الوصول"},
      {"cert.evidence", "ملف الأدلة (JSON)"},
      {"act.confirm", "تأكيد الاستلام كما هو مصرّح"},
      {"act.remarks", "ملاحظات"},
      {"act.reject", "رفض الشحنة"},
      {"act.cancel", "إلغاء الشهادة"},
      {"act.reason", "السبب"},
      {"error.title", "لم تنجح العملية"},
      {"error.not_found", "هذه الصفحة غير موجودة."},
      {"state.ISSUED", "صادرة"},
      {"state.DELIVERED", "مُسلَّمة"},
      {"state.RECEIVED", "مستلَمة"},
      {"state.CONFIRMED", "مؤكَّدة"},
      {"state.REJECTED", "مرفوضة"},
      {"state.CANCELLED", "ملغاة"},
      {"state.EXPIRED", "منتهية"},
      {"state.REPLACED", "مستبدَلة"},
      {"state.VOIDED", "مُبطَلة"},
      {"state.DISPUTED", "متنازع عليها"},
      {"state.REFUSED", "رفضتها عقدة المستورد"},
      {"role.EXPORTER", "سلطة التصدير"},
      {"role.IMPORTER", "سلطة الاستيراد"},
      {"role.AUDITOR", "مدقق"},
      {"role.OPERATOR", "مشغّل"},
  };
  return *c;
}

const Catalogue& For(std::string_view lang) {
  if (lang == "fr") return French();
  if (lang == "pt") return Portuguese();
  if (lang == "ar") return Arabic();
  return English();
}

}  // namespace

const std::vector<Language>& Languages() {
  static const auto* all = new std::vector<Language>{
      {"en", "English", false},
      {"fr", "Français", false},
      {"pt", "Português", false},
      {"ar", "العربية", true},
  };
  return *all;
}

const Language& FindLanguage(std::string_view code) {
  for (const Language& l : Languages()) {
    if (code == l.code) return l;
  }
  return Languages().front();
}

std::string Text(std::string_view lang, std::string_view key) {
  const Catalogue& own = For(lang);
  if (auto it = own.find(key); it != own.end()) return it->second;
  if (auto it = English().find(key); it != English().end()) return it->second;
  return std::string(key);
}

std::vector<std::string> TextKeys() {
  std::vector<std::string> keys;
  for (const auto& [key, text] : English()) keys.push_back(key);
  return keys;
}

bool HasText(std::string_view lang, std::string_view key) { return For(lang).count(key) > 0; }

}  // namespace kpx::gateway
