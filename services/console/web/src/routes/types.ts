import type { RouteRecordRaw } from "vue-router";
import type { Permission } from "../api/session";

// One area of the app (e.g. "meters" of the console): its pages and its entries in the navigation.
// Each area is a file in this folder exporting an `Area` as default; router.ts collects them.
export interface NavItem {
  to: string; // the path under /console or /portal, e.g. "meters"
  label: string; // an i18n key, e.g. "nav.meters"
  icon?: string; // one of the glyphs in components/NavIcon.vue
  permission?: Permission; // shown only to callers holding it (the API refuses the rest anyway)
  order: number; // position in the navigation
}

export interface Area {
  app: "console" | "portal";
  routes: RouteRecordRaw[]; // children of /console or /portal; paths relative ("meters/:id")
  nav: NavItem[];
}
