import type { Area } from "./types";

// The fleet: meters (search, detail with curve and remote control), gateways with their collection topology,
// SIM cards, and the map of located meters.
const area: Area = {
  app: "console",
  routes: [
    { path: "meters", name: "meters", component: () => import("../views/console/fleet/Meters.vue") },
    { path: "meters/:id", name: "meter", component: () => import("../views/console/fleet/MeterDetail.vue"), props: true },
    { path: "gateways", name: "gateways", component: () => import("../views/console/fleet/Gateways.vue") },
    { path: "gateways/:id", name: "gateway", component: () => import("../views/console/fleet/GatewayDetail.vue"), props: true },
    { path: "sim-cards", name: "sim-cards", component: () => import("../views/console/fleet/SimCards.vue") },
    { path: "map", name: "map", component: () => import("../views/console/fleet/FleetMap.vue") },
  ],
  nav: [
    { to: "meters", label: "nav.meters", icon: "meters", permission: "read", order: 20 },
    { to: "gateways", label: "nav.gateways", icon: "topology", permission: "read", order: 25 },
    { to: "map", label: "nav.map", icon: "map", permission: "read", order: 30 },
  ],
};
export default area;
