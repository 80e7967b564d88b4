"""The FHIR R5 export: an infusion as a Bundle for a hospital system to import."""
