import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { isCustomer, loggedIn } from "./api/session";
import type { Area, NavItem } from "./routes/types";

const areas = Object.values(import.meta.glob<{ default: Area }>("./routes/*.ts", { eager: true }))
  .map((m) => m.default)
  .filter((a): a is Area => !!a && Array.isArray(a.routes));

function of(app: Area["app"]): { routes: RouteRecordRaw[]; nav: NavItem[] } {
  const mine = areas.filter((a) => a.app === app);
  return {
    routes: mine.flatMap((a) => a.routes),
    nav: mine.flatMap((a) => a.nav).sort((x, y) => x.order - y.order),
  };
}

export const consoleArea = of("console");
export const portalArea = of("portal");

export const router = createRouter({
  history: createWebHistory("/"),
  routes: [
    { path: "/", redirect: "/console/" },
    { path: "/console/login", name: "console-login", component: () => import("./views/Login.vue"), props: { app: "console" } },
    { path: "/portal/login", name: "portal-login", component: () => import("./views/Login.vue"), props: { app: "portal" } },
    {
      path: "/console",
      component: () => import("./components/ConsoleShell.vue"),
      meta: { app: "console" },
      children: [{ path: "", redirect: "/console/overview" }, ...consoleArea.routes],
    },
    {
      path: "/portal",
      component: () => import("./components/PortalShell.vue"),
      meta: { app: "portal" },
      children: [{ path: "", redirect: "/portal/home" }, ...portalArea.routes],
    },
    { path: "/:rest(.*)*", component: () => import("./views/NotFound.vue") },
  ],
});

// Pages need a login; customers belong in the portal, staff in the console.
router.beforeEach((to) => {
  const app = to.matched[0]?.meta.app as Area["app"] | undefined;
  if (!app) return true;
  if (!loggedIn.value) return { path: `/${app}/login`, query: { next: to.fullPath } };
  if (app === "console" && isCustomer.value) return { path: "/portal/home" };
  if (app === "portal" && !isCustomer.value) return { path: "/console/overview" };
  return true;
});

// After a release the hashed file names change: a page opened before it asks for a screen that is gone.
// Load the new release once instead of showing nothing (sessionStorage keeps this from looping).
router.onError((error, to) => {
  const stale = /Failed to fetch dynamically imported module|Importing a module script failed/i.test(String(error));
  if (stale && sessionStorage.getItem("amiflow.reloaded") !== to.fullPath) {
    sessionStorage.setItem("amiflow.reloaded", to.fullPath);
    window.location.assign(to.fullPath);
  }
});
