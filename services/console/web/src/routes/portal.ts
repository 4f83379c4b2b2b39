import type { Area } from "./types";

// The customer portal (a phone first): balance, usage, bills, paying, notification settings — of the account in
// the customer's token (`account_id`); the services refuse any other.
const area: Area = {
  app: "portal",
  routes: [
    { path: "home", name: "portal-home", component: () => import("../views/portal/PortalHome.vue") },
    { path: "usage", name: "portal-usage", component: () => import("../views/portal/PortalUsage.vue") },
    { path: "bills", name: "portal-bills", component: () => import("../views/portal/PortalBills.vue") },
    { path: "pay", name: "portal-pay", component: () => import("../views/portal/PortalPay.vue") },
    {
      path: "pay/:orderId",
      name: "portal-checkout",
      component: () => import("../views/portal/PortalCheckout.vue"),
      props: true,
    },
    { path: "settings", name: "portal-settings", component: () => import("../views/portal/PortalSettings.vue") },
  ],
  nav: [
    { to: "home", label: "nav.portal.home", icon: "home", order: 10 },
    { to: "usage", label: "nav.portal.usage", icon: "usage", order: 20 },
    { to: "bills", label: "nav.portal.bills", icon: "bills", order: 30 },
    { to: "pay", label: "nav.portal.pay", icon: "pay", order: 40 },
    { to: "settings", label: "nav.portal.settings", icon: "settings", order: 50 },
  ],
};
export default area;
