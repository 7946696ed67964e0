package audit

// CheckMarkup lets the external tests check pages for markup the report does not make.
var CheckMarkup = checkMarkup
