import type { Area } from "./types";

// The console's operations pages: consumption curves, alarms (and district balances), the command console,
// tariffs and report downloads.
const area: Area = {
  app: "console",
  routes: [
    { path: "curves", name: "curves", component: () => import("../views/console/operations/Curves.vue") },
    { path: "alarms", name: "alarms", component: () => import("../views/console/operations/Alarms.vue") },
    { path: "alarms/districts", name: "alarm-districts", component: () => import("../views/console/operations/Districts.vue") },
    { path: "commands", name: "commands", component: () => import("../views/console/operations/Commands.vue") },
    { path: "tariffs", name: "tariffs", component: () => import("../views/console/operations/Tariffs.vue") },
    { path: "reports", name: "reports", component: () => import("../views/console/operations/Reports.vue") },
  ],
  nav: [
    { to: "curves", label: "nav.curves", icon: "curves", permission: "read", order: 40 },
    { to: "alarms", label: "nav.alarms", icon: "alarms", permission: "read", order: 50 },
    { to: "commands", label: "nav.commands", icon: "commands", permission: "read", order: 60 },
    { to: "tariffs", label: "nav.tariffs", icon: "tariffs", permission: "read", order: 80 },
    { to: "reports", label: "nav.reports", icon: "reports", permission: "read", order: 90 },
  ],
};
export default area;
