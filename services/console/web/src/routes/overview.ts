import type { Area } from "./types";

const area: Area = {
  app: "console",
  routes: [{ path: "overview", name: "overview", component: () => import("../views/console/Overview.vue") }],
  nav: [{ to: "overview", label: "nav.overview", icon: "overview", permission: "read", order: 10 }],
};
export default area;
